package mesh

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// flakyProxy listens on loopback and forwards TCP connections to target,
// except the first `drop`, which it resets once the dialer has sent its
// first bytes, as a node that is stopping or restarting might.
func flakyProxy(t *testing.T, target string, drop int) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if n < drop {
				var b [1]byte
				_, _ = c.Read(b[:])
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return l.Addr().String()
}

// TestHandshakeRetried: a connection dropped during the security handshake
// is tried again, so a node that is restarting is reached without the
// swarm key hint; one that keeps dropping it gives ErrHandshake, which
// says a swarm key is only a possibility.
func TestHandshakeRetried(t *testing.T) {
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	node := newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	var target string
	for _, a := range node.Addrs() {
		if s := a.String(); strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") {
			target = "127.0.0.1:" + strings.Split(strings.TrimPrefix(s, "/ip4/127.0.0.1/tcp/"), "/")[0]
			break
		}
	}
	if target == "" {
		t.Fatalf("no loopback TCP address among %v", node.Addrs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	via := func(proxy string) string {
		host, port, _ := net.SplitHostPort(proxy)
		return "/ip4/" + host + "/tcp/" + port + "/p2p/" + node.ID().String()
	}

	client := newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	if _, err := client.Connect(ctx, via(flakyProxy(t, target, 1))); err != nil {
		t.Fatalf("one dropped handshake: %v", err)
	}

	client = newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	_, err := client.Connect(ctx, via(flakyProxy(t, target, handshakeTries)))
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "if it runs a private mesh") {
		t.Fatalf("every handshake dropped: err = %v, want ErrHandshake suggesting a swarm key as a possibility", err)
	}
	t.Log(err)
}
