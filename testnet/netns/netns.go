//go:build linux

package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Link is what one node's side of the network does to the packets it
// sends. The zero Link forwards them at once.
type Link struct {
	Delay  time.Duration // one-way delay
	Jitter time.Duration // the delay varies uniformly in ±Jitter
	Loss   float64       // fraction of packets lost, in [0, 1)
	Rate   int64         // bits per second, 0 for no limit
}

func (l Link) validate() error {
	switch {
	case l.Delay < 0 || l.Jitter < 0:
		return fmt.Errorf("netns: negative delay or jitter in %+v", l)
	case l.Jitter > l.Delay:
		return fmt.Errorf("netns: jitter %v exceeds the delay %v", l.Jitter, l.Delay)
	case l.Loss < 0 || l.Loss >= 1:
		return fmt.Errorf("netns: loss %v is not in [0, 1)", l.Loss)
	case l.Rate < 0:
		return fmt.Errorf("netns: negative rate %d", l.Rate)
	}
	return nil
}

// Backend says how the namespaces are joined.
type Backend int

const (
	// Auto picks Kernel where netem works (or no link needs it) and
	// User otherwise.
	Auto Backend = iota
	// Kernel joins the namespaces with veth pairs to a bridge and
	// shapes them with tc netem.
	Kernel
	// User joins them with TUN devices forwarded by this process.
	User
)

func (b Backend) String() string {
	switch b {
	case Kernel:
		return "kernel (veth, bridge, tc netem)"
	case User:
		return "user (tun, forwarded in process)"
	}
	return "auto"
}

// Options describe a Net.
type Options struct {
	Nodes   int
	Link    Link   // every node's link, unless Links says otherwise
	Links   []Link // per node; a missing entry takes Link
	Backend Backend
	Seed    int64 // of the User backend's loss and jitter
}

func (o *Options) link(i int) Link {
	if i < len(o.Links) {
		return o.Links[i]
	}
	return o.Link
}

// Net is a set of network namespaces joined by emulated links.
type Net struct {
	opts    Options
	backend Backend
	prefix  string   // namespace names are prefix + "n<i>" (and "hub")
	names   []string // namespace of node i
	hub     *hub     // User backend
	kern    *kernel  // Kernel backend

	mu     sync.Mutex
	procs  []*Proc
	closed bool
}

// seq tells apart the Nets of one process.
var seq atomic.Int64

// namePrefix is the start of every namespace name this package makes;
// the pid of the owning process follows it.
const namePrefix = "strata-"

// Available reports whether this machine can run a Net: root, the ip and
// tc commands, and a namespace that can be created. The error says what is
// missing.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root (network namespaces, links and qdiscs)")
	}
	for _, cmd := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return fmt.Errorf("netns: no %s command on the PATH (iproute2)", cmd)
		}
	}
	name := fmt.Sprintf("%s%d-probe%d", namePrefix, os.Getpid(), seq.Add(1))
	if err := ip("netns", "add", name); err != nil {
		return fmt.Errorf("netns: cannot create a network namespace: %w", err)
	}
	defer ip("netns", "del", name)
	if err := ip("-n", name, "link", "set", "lo", "up"); err != nil {
		return fmt.Errorf("netns: cannot configure a network namespace: %w", err)
	}
	return nil
}

// NetemAvailable reports whether tc netem works here (the Kernel backend
// needs it for delay, jitter and loss).
func NetemAvailable() error {
	name := fmt.Sprintf("%s%d-probe%d", namePrefix, os.Getpid(), seq.Add(1))
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	defer ip("netns", "del", name)
	if err := run("ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"); err != nil {
		return fmt.Errorf("netns: tc netem does not work (kernel without sch_netem?): %w", err)
	}
	return nil
}

// TUNAvailable reports whether TUN devices can be made (the User backend).
func TUNAvailable() error {
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("netns: no TUN devices: %w", err)
	}
	return f.Close()
}

// New creates o.Nodes namespaces and joins them. On error nothing is left
// behind.
func New(ctx context.Context, o Options) (*Net, error) {
	if o.Nodes <= 0 || o.Nodes > 250 {
		return nil, fmt.Errorf("netns: %d nodes; want 1 to 250", o.Nodes)
	}
	needNetem := false
	for i := range o.Nodes {
		l := o.link(i)
		if err := l.validate(); err != nil {
			return nil, err
		}
		needNetem = needNetem || l.Delay > 0 || l.Loss > 0
	}
	if err := Available(); err != nil {
		return nil, err
	}
	sweep()
	b := o.Backend
	if b == Auto {
		b = Kernel
		if needNetem && NetemAvailable() != nil {
			b = User
		}
	}
	n := &Net{opts: o, backend: b, prefix: fmt.Sprintf("%s%d-%d-", namePrefix, os.Getpid(), seq.Add(1))}
	for i := range o.Nodes {
		name := n.prefix + "n" + strconv.Itoa(i)
		if err := ip("netns", "add", name); err != nil {
			n.Close()
			return nil, err
		}
		n.names = append(n.names, name)
		if err := ip("-n", name, "link", "set", "lo", "up"); err != nil {
			n.Close()
			return nil, err
		}
	}
	var err error
	switch b {
	case Kernel:
		n.kern, err = newKernel(n)
	case User:
		n.hub, err = newHub(n)
	default:
		err = fmt.Errorf("netns: unknown backend %d", b)
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Backend is the backend in use.
func (n *Net) Backend() Backend { return n.backend }

// Nodes is the number of namespaces.
func (n *Net) Nodes() int { return len(n.names) }

// Name is the name of node i's namespace (for `ip netns exec`).
func (n *Net) Name(i int) string { return n.names[i] }

// IP is node i's address.
func (n *Net) IP(i int) string { return fmt.Sprintf("10.200.0.%d", i+1) }

// index is the node an address of the net belongs to, or -1.
func index(dst [4]byte, nodes int) int {
	if dst[0] != 10 || dst[1] != 200 || dst[2] != 0 || dst[3] == 0 || int(dst[3]) > nodes {
		return -1
	}
	return int(dst[3]) - 1
}

// Partition cuts the net into groups: nodes in different groups cannot
// reach each other; a node in no group is cut off from all others.
func (n *Net) Partition(groups ...[]int) error {
	g := make([]int, len(n.names))
	for i := range g {
		g[i] = -1 - i
	}
	for k, grp := range groups {
		for _, i := range grp {
			if i < 0 || i >= len(g) {
				return fmt.Errorf("netns: no node %d", i)
			}
			g[i] = k
		}
	}
	if n.hub != nil {
		n.hub.partition(g)
		return nil
	}
	return n.kern.partition(g)
}

// Heal joins all nodes again.
func (n *Net) Heal() error {
	if n.hub != nil {
		n.hub.partition(nil)
		return nil
	}
	return n.kern.partition(nil)
}

// Proc is a process running in a node's namespace.
type Proc struct {
	Node int
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Done is closed when the process has exited; Err then says how.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, once Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Stop sends SIGTERM and waits for the process to exit, sending SIGKILL
// after grace. It returns the exit error.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// Command returns a command that runs name with args in node i's
// namespace, in its own process group, sent SIGTERM should this process
// die.
func (n *Net) Command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.names[i], name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	return cmd
}

// Start starts name with args in node i's namespace, its output going to
// the file log. Close stops it if it still runs.
func (n *Net) Start(i int, log, name string, args ...string) (*Proc, error) {
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// ip netns exec execs the command in place, so the process is the
	// command itself and signals reach it.
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.names[i], name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Stdout, cmd.Stderr = f, f
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("netns: net closed")
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netns: start %s in node %d: %w", name, i, err)
	}
	p := &Proc{Node: i, Cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	n.procs = append(n.procs, p)
	return p, nil
}

// Close stops the processes still running (SIGTERM, SIGKILL after 10
// seconds), closes the links and deletes the namespaces. It returns the
// first error of the clean-up, having tried all of it.
func (n *Net) Close() error {
	n.mu.Lock()
	n.closed = true
	procs := n.procs
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop(10 * time.Second) }()
	}
	wg.Wait()
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	if n.hub != nil {
		n.hub.close()
	}
	if n.kern != nil {
		keep(n.kern.close())
	}
	for _, name := range n.names {
		keep(ip("netns", "del", name))
	}
	return first
}

// sweep deletes the namespaces of this package whose owning process is
// gone (a test killed before its clean-up ran).
func sweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, namePrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = ip("netns", "del", name)
		}
	}
}

// ip runs the ip command.
func ip(args ...string) error { return run("ip", args...) }

// run runs a command, returning its stderr in the error.
func run(name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
