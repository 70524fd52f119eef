//go:build !linux

package harness

import (
	"os/exec"
	"time"
)

// setParentDeathSignal is a no-op where the OS offers no parent-death
// signal; Stop still ends the children on a normal exit or interrupt.
func setParentDeathSignal(*exec.Cmd) {}

// SelfCPU is unknown here: 0 (a report then shows no client CPU).
func SelfCPU() time.Duration { return 0 }
