//go:build linux

package netns

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv makes the test binary a small network tool run inside a
// namespace (see helper).
const helperEnv = "STRATA_NETNS_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		if err := helper(strings.Fields(h)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper runs one tool:
//
//	serve ADDR       echo every byte back, and answer "bulk N" with N bytes
//	ping ADDR N      N one-byte round trips; prints each RTT in µs
//	bulk ADDR N      fetch N bytes; prints the µs it took
//	dial ADDR        connect within a second, or fail
func helper(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("helper: %q", args)
	}
	if args[0] == "serve" {
		l, err := net.Listen("tcp", args[1])
		if err != nil {
			return err
		}
		fmt.Println("listening")
		for {
			c, err := l.Accept()
			if err != nil {
				return err
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				first, err := r.ReadByte()
				if err != nil {
					return
				}
				if first == 'B' { // bulk: 8-byte decimal count follows
					var n int64
					fmt.Fscan(r, &n)
					io.CopyN(c, zeros{}, n)
					return
				}
				c.Write([]byte{first})
				io.Copy(c, r)
			}()
		}
	}
	c, err := net.DialTimeout("tcp", args[1], time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	n := 0
	if len(args) > 2 {
		n, _ = strconv.Atoi(args[2])
	}
	switch args[0] {
	case "dial":
		return nil
	case "ping":
		b := []byte{'p'}
		for range n {
			start := time.Now()
			if _, err := c.Write(b); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, b); err != nil {
				return err
			}
			fmt.Println(time.Since(start).Microseconds())
		}
	case "bulk":
		start := time.Now()
		fmt.Fprintf(c, "B %d\n", n)
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			return err
		}
		fmt.Println(time.Since(start).Microseconds())
	}
	return nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// newNet skips t where namespaces cannot be made, and closes the Net when
// t ends.
func newNet(t *testing.T, o Options) *Net {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	switch o.Backend {
	case Kernel:
		if o.Link.Delay > 0 || o.Link.Loss > 0 {
			if err := NetemAvailable(); err != nil {
				t.Skipf("skipping: %v", err)
			}
		}
	case User:
		if err := TUNAvailable(); err != nil {
			t.Skipf("skipping: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		raw, _ := exec.Command("ip", "netns", "list").Output()
		out := string(raw)
		if strings.Contains(out, n.prefix) {
			t.Errorf("namespaces left after Close:\n%s", out)
		}
	})
	return n
}

// tool runs helper args in node i and returns its output lines.
func tool(t *testing.T, n *Net, i int, args ...string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := n.Command(ctx, i, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(args, " "))
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		err = fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return strings.Fields(string(out)), err
}

// serve starts the echo server in node i on port 7000.
func serve(t *testing.T, n *Net, i int) string {
	t.Helper()
	cmd := n.Command(context.Background(), i, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=serve "+n.IP(i)+":7000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("echo server in node %d: %q, %v", i, line, err)
	}
	return n.IP(i) + ":7000"
}

func backends(t *testing.T, f func(t *testing.T, b Backend)) {
	for _, b := range []Backend{Kernel, User} {
		t.Run(strings.Fields(b.String())[0], func(t *testing.T) { f(t, b) })
	}
}

// TestDelay checks that round trips between two nodes whose links delay
// by 20 ms ± 5 ms take at least 30 ms, and logs what they take.
func TestDelay(t *testing.T) {
	backends(t, func(t *testing.T, b Backend) {
		link := Link{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}
		n := newNet(t, Options{Nodes: 2, Link: link, Backend: b})
		addr := serve(t, n, 1)
		lines, err := tool(t, n, 0, "ping", addr, "20")
		if err != nil {
			t.Fatal(err)
		}
		var rtts []time.Duration
		for _, l := range lines {
			us, _ := strconv.Atoi(l)
			rtts = append(rtts, time.Duration(us)*time.Microsecond)
		}
		slices.Sort(rtts)
		if len(rtts) != 20 {
			t.Fatalf("got %d round trips, want 20", len(rtts))
		}
		t.Logf("%s: 20 TCP round trips: min %v, median %v, max %v (links %v ± %v each way)",
			b, rtts[0], rtts[10], rtts[19], link.Delay, link.Jitter)
		if least := 2 * (link.Delay - link.Jitter); rtts[0] < least {
			t.Errorf("shortest round trip %v, want at least %v", rtts[0], least)
		}
	})
}

// TestRate checks that a 1 MB transfer over a 4 Mbit/s link takes at
// least the 2 s the link needs.
func TestRate(t *testing.T) {
	backends(t, func(t *testing.T, b Backend) {
		const rate, size = 4_000_000, 1_000_000
		n := newNet(t, Options{Nodes: 2, Link: Link{Rate: rate}, Backend: b})
		addr := serve(t, n, 1)
		lines, err := tool(t, n, 0, "bulk", addr, strconv.Itoa(size))
		if err != nil || len(lines) != 1 {
			t.Fatalf("bulk: %v %q", err, lines)
		}
		us, _ := strconv.Atoi(lines[0])
		took := time.Duration(us) * time.Microsecond
		t.Logf("%s: %d bytes in %v: %.2f Mbit/s over a %g Mbit/s link", b, size, took, float64(size*8)/took.Seconds()/1e6, rate/1e6)
		// Payload alone needs size*8/rate; allow the first burst.
		if least := time.Duration(size*8/rate) * time.Second * 9 / 10; took < least {
			t.Errorf("transfer took %v, want at least %v", took, least)
		}
	})
}

// TestPartition cuts node 0 off from nodes 1 and 2, checks that 1 and 2
// still talk and 0 reaches neither, then heals.
func TestPartition(t *testing.T) {
	backends(t, func(t *testing.T, b Backend) {
		n := newNet(t, Options{Nodes: 3, Backend: b})
		a1, a2 := serve(t, n, 1), serve(t, n, 2)
		if _, err := tool(t, n, 0, "dial", a1); err != nil {
			t.Fatalf("before the cut: %v", err)
		}
		if err := n.Partition([]int{0}, []int{1, 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := tool(t, n, 0, "dial", a1); err == nil {
			t.Error("node 0 reached node 1 across the cut")
		}
		if _, err := tool(t, n, 1, "dial", a2); err != nil {
			t.Errorf("node 1 to node 2 on the same side: %v", err)
		}
		if err := n.Heal(); err != nil {
			t.Fatal(err)
		}
		if _, err := tool(t, n, 0, "dial", a2); err != nil {
			t.Errorf("after healing: %v", err)
		}
		if st := n.Stats(); st != nil {
			t.Logf("link counters: %+v", st)
		}
	})
}
