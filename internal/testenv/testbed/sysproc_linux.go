package main

import "syscall"

// cmdAttr has the kernel kill the command when the test bed dies, so a
// killed test bed leaves no test binary running against stopped services.
func cmdAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
