package testenv

import "syscall"

// sysProcAttr puts a service in its own process group and has the kernel
// SIGKILL it when the thread that started it dies (the test bed was killed).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
