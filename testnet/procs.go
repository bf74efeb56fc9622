package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/node"
)

// Proc is one node running as a child process.
type Proc struct {
	Index  int
	ID     string // peer id
	Addr   string // full multiaddr, /ip4/127.0.0.1/tcp/PORT/p2p/ID
	Blocks [2]int // span served (serving meshes only)
	Cmd    *exec.Cmd
	Log    string // file receiving the node's stderr
	HTTP   string // HOST:PORT of the node's HTTP API, if Options.HTTP
	done   chan struct{}
}

// Procs is a mesh of node processes.
type Procs struct {
	Model string // the model served (serving meshes)
	// Run and Spec are the id and spec of the training run (LaunchRun).
	Run   string
	Spec  node.RunSpec
	Nodes []*Proc
}

// Launch imports the model into each repo and starts one `bin node`
// process per node on loopback, each bootstrapping from the first. The
// nodes' logs go to Dir/node<i>.log. It returns once every node answers a
// one-step generate request through the whole chain, or ctx ends.
func Launch(ctx context.Context, bin string, o Options) (*Procs, error) {
	id, spans, err := Prepare(&o)
	if err != nil {
		return nil, err
	}
	ps := &Procs{Model: id}
	for i := range o.Nodes {
		args := []string{"--model", id, "--blocks", Blocks(spans[i])}
		if i > 0 {
			args = append(args, "--bootstrap", ps.Nodes[0].Addr)
		}
		p, err := ps.start(bin, o.Dir, i, o.HTTP, args)
		if err != nil {
			ps.Stop()
			return nil, err
		}
		p.Blocks = spans[i]
	}
	for _, p := range ps.Nodes {
		var last error
		err := wait(ctx, fmt.Sprintf("node %d serving the whole model", p.Index), func() bool {
			select {
			case <-p.done:
				last = fmt.Errorf("node %d exited: see %s", p.Index, p.Log)
				return true
			default:
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, last = node.Query(qctx, p.Addr, infer.Request{Steps: 1}, func(infer.Token) error { return nil }, nil)
			return last == nil
		})
		if err == nil {
			err = last
		}
		if err != nil {
			ps.Stop()
			if last != nil && !errors.Is(err, last) {
				err = fmt.Errorf("%w (last error: %v)", err, last)
			}
			return nil, err
		}
	}
	return ps, nil
}

// start starts `bin node` for node i of a mesh in dir, on a free loopback
// port, with the given extra arguments, its stdout and stderr going to
// dir/node<i>.log, and adds it to ps. The node's repo is Repo(dir, i);
// its identity key is created there if missing.
func (ps *Procs) start(bin, dir string, i int, http bool, extra []string) (*Proc, error) {
	pid, err := PeerID(Repo(dir, i))
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
	p := &Proc{Index: i, ID: pid, Addr: listen + "/p2p/" + pid, done: make(chan struct{}),
		Log: filepath.Join(dir, fmt.Sprintf("node%d.log", i))}
	args := append([]string{"node", "--repo", Repo(dir, i), "--listen", listen, "--no-mdns"}, extra...)
	if http {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		p.HTTP = fmt.Sprintf("127.0.0.1:%d", hp)
		args = append(args, "--http", p.HTTP)
	}
	logf, err := os.Create(p.Log)
	if err != nil {
		return nil, err
	}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	p.Cmd.SysProcAttr = procAttr()
	if err := p.Cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("testnet: start node %d: %w", i, err)
	}
	go func() { p.Cmd.Wait(); logf.Close(); close(p.done) }()
	ps.Nodes = append(ps.Nodes, p)
	return p, nil
}

// PeerID returns the peer id of the node whose repo is dir, creating the
// repo and its identity key if missing.
func PeerID(repo string) (string, error) {
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return "", err
	}
	key, err := mesh.LoadIdentity(filepath.Join(repo, node.IdentityFile))
	if err != nil {
		return "", err
	}
	return mesh.IDFromKey(key)
}

// Stop sends SIGTERM to every node and waits for them to exit (SIGKILL
// after 10 seconds).
func (ps *Procs) Stop() {
	for _, p := range ps.Nodes {
		if p.Cmd.Process != nil {
			_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range ps.Nodes {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	}
}

// Done is closed when the node process exits.
func (p *Proc) Done() <-chan struct{} { return p.done }

// freePort asks the kernel for an unused loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
