package main

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel send SIGTERM to the child if this
// process dies without stopping it (kill -9, a crash).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
