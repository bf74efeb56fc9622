//go:build !linux

package testnet

import "syscall"

// procAttr leaves node processes in the parent's process group: a Ctrl-C
// at the terminal reaches them directly.
func procAttr() *syscall.SysProcAttr { return nil }
