//go:build !linux

package main

import "os/exec"

// setParentDeathSignal is a no-op where the OS offers no parent-death
// signal; stop still ends the children on a normal exit or interrupt.
func setParentDeathSignal(*exec.Cmd) {}
