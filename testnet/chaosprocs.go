package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
)

// Kill stops node i with SIGKILL, as a crash or a power cut would, and
// waits for the process to exit. Killing a node that has already exited
// is not an error.
//
// Kill and Restart replace the node's process in place: they must not
// run concurrently with each other, with Stop, or with anything waiting
// on the node's Done channel.
func (ps *Procs) Kill(i int) error {
	p := ps.Nodes[i]
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.Cmd.Process.Kill(); err != nil {
		return fmt.Errorf("testnet: kill node %d: %w", i, err)
	}
	<-p.done
	return nil
}

// Restart starts node i again once its process has exited: the same
// binary, repo, listen port and arguments, with every other node of the
// mesh added as a bootstrap peer so that it rejoins whichever of them are
// up. Its output is appended to the same log file, after a line saying
// it was restarted.
func (ps *Procs) Restart(i int) error {
	p := ps.Nodes[i]
	select {
	case <-p.done:
	default:
		return fmt.Errorf("testnet: restart node %d: it is still running", i)
	}
	args := slices.Clone(p.Cmd.Args[1:])
	for _, q := range ps.Nodes {
		if q != p && !slices.Contains(args, q.Addr) {
			args = append(args, "--bootstrap", q.Addr)
		}
	}
	logf, err := os.OpenFile(p.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("testnet: restart node %d: %w", i, err)
	}
	fmt.Fprintf(logf, "\n--- restarted (previous process: %v) ---\n", p.Cmd.ProcessState)
	cmd := exec.Command(p.Cmd.Path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("testnet: restart node %d: %w", i, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	p.Cmd, p.done = cmd, done
	return nil
}
