package testnet

import "syscall"

// procAttr puts a node process in its own process group, so a Ctrl-C at
// the terminal reaches only the parent, which stops the nodes in order
// (Procs.Stop), and has the kernel send it SIGTERM should the parent die
// without doing so.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
