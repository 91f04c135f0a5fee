//go:build !linux

package main

import "syscall"

func cmdAttr() *syscall.SysProcAttr { return nil }
