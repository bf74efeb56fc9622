package mesh

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSwarmKeyRoundTrip(t *testing.T) {
	file, err := NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	psk, err := LoadSwarmKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(psk) != 32 {
		t.Fatalf("key is %d bytes, want 32", len(psk))
	}
	other, _ := NewSwarmKey()
	if bytes.Equal(file, other) {
		t.Fatal("two NewSwarmKey calls gave the same key")
	}
	// CRLF line ends, as an editor on another system may leave them.
	crlf := strings.ReplaceAll(string(file), "\n", "\r\n")
	got, err := DecodeSwarmKey(strings.NewReader(crlf))
	if err != nil || !bytes.Equal(got, psk) {
		t.Fatalf("CRLF file: got %x, %v; want %x", got, err, psk)
	}
}

func TestSwarmKeyRejectsBadFiles(t *testing.T) {
	for name, in := range map[string]string{
		"empty":      "",
		"no header":  strings.Repeat("ab", 32),
		"bad codec":  "/key/swarm/psk/1.0.0/\n/base32/\n" + strings.Repeat("ab", 32),
		"short key":  "/key/swarm/psk/1.0.0/\n/base16/\nabcd\n",
		"not hex":    "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("zz", 32),
		"long line":  strings.Repeat("x", 2*maxSwarmKeyFile),
		"other path": "/key/swarm/psk/2.0.0/\n/base16/\n" + strings.Repeat("ab", 32),
	} {
		if _, err := DecodeSwarmKey(strings.NewReader(in)); !errors.Is(err, ErrBadSwarmKey) {
			t.Errorf("%s: err = %v, want ErrBadSwarmKey", name, err)
		}
	}
	if _, err := LoadSwarmKey(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadSwarmKey of a missing file succeeded")
	}
}

func FuzzDecodeSwarmKey(f *testing.F) {
	good, _ := NewSwarmKey()
	f.Add(good)
	f.Add([]byte("/key/swarm/psk/1.0.0/\n/base64/\n" + strings.Repeat("A", 44)))
	f.Add([]byte("/key/swarm/psk/1.0.0/\n/bin/\n" + strings.Repeat("k", 32)))
	f.Fuzz(func(t *testing.T, in []byte) {
		psk, err := DecodeSwarmKey(bytes.NewReader(in))
		if err == nil && len(psk) != 32 {
			t.Fatalf("decoded a %d-byte key", len(psk))
		}
		if err != nil && !errors.Is(err, ErrBadSwarmKey) {
			t.Fatalf("err = %v, want ErrBadSwarmKey", err)
		}
	})
}

// TestPrivateSwarm checks that only nodes holding the same swarm key can
// connect: nodes without a key, or with another key, are refused.
func TestPrivateSwarm(t *testing.T) {
	key := func() []byte {
		file, err := NewSwarmKey()
		if err != nil {
			t.Fatal(err)
		}
		psk, err := DecodeSwarmKey(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		return psk
	}
	k1, k2 := key(), key()
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	a := newTestMesh(t, Config{Listen: tcp, PSK: k1, NoDHT: true})
	b := newTestMesh(t, Config{Listen: tcp, PSK: k1, NoDHT: true})
	plain := newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	stranger := newTestMesh(t, Config{Listen: tcp, PSK: k2, NoDHT: true})

	dial := func(from, to *Mesh) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := from.Connect(ctx, to.Addrs()[0].String())
		return err
	}
	if err := dial(b, a); err != nil {
		t.Fatalf("member to member: %v", err)
	}
	for _, c := range []struct {
		name     string
		from, to *Mesh
	}{
		{"keyless to member", plain, a},
		{"member to keyless", a, plain},
		{"other key to member", stranger, a},
		{"member to other key", b, stranger},
	} {
		if err := dial(c.from, c.to); !errors.Is(err, ErrHandshake) {
			t.Errorf("%s: err = %v, want ErrHandshake", c.name, err)
		}
	}
	for _, m := range []*Mesh{plain, stranger} {
		if connected(m, a) || connected(m, b) {
			t.Errorf("%s holds a connection to a private swarm member", m.ID())
		}
	}
}
