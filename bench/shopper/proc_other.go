//go:build !linux

package main

import (
	"os/exec"
	"time"
)

// setParentDeathSignal is a no-op where the OS offers no parent-death
// signal; stop still ends the child on a normal exit or interrupt.
func setParentDeathSignal(*exec.Cmd) {}

// selfCPU is unknown here; the report then shows no client CPU.
func selfCPU() time.Duration { return 0 }
