package harness

import (
	"os/exec"
	"syscall"
	"time"
)

// setParentDeathSignal has the kernel send SIGTERM to the child if this
// process dies without stopping it (kill -9, a crash).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// SelfCPU is the CPU time (user + system) this process has used so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
