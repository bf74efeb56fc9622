package mesh

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestLoadIdentityPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "repo", "identity.key")
	k1, err := LoadIdentity(path)
	if err != nil {
		t.Fatalf("first load: %v", err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type = %v, want Ed25519", k1.Type())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Fatalf("mode = %o, want 600", got)
	}
	k2, err := LoadIdentity(path)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	id1, _ := peer.IDFromPrivateKey(k1)
	id2, _ := peer.IDFromPrivateKey(k2)
	if id1 != id2 {
		t.Fatalf("peer id after reload = %s, want %s", id2, id1)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".identity-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestLoadIdentityCorrupt(t *testing.T) {
	for name, content := range map[string][]byte{
		"empty":     {},
		"garbage":   []byte("this is not a key"),
		"truncated": nil, // filled below
		"huge":      make([]byte, maxIdentityFile+10),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "identity.key")
			if name == "truncated" {
				k, err := LoadIdentity(path)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := crypto.MarshalPrivateKey(k)
				content = raw[:len(raw)-5]
			}
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadIdentity(path)
			if !errors.Is(err, ErrCorruptIdentity) {
				t.Fatalf("err = %v, want ErrCorruptIdentity", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(content) {
				t.Fatal("corrupt identity file was modified")
			}
		})
	}
}

func TestLoadIdentityEmptyPath(t *testing.T) {
	if _, err := LoadIdentity(""); err == nil {
		t.Fatal("LoadIdentity(\"\") succeeded, want error")
	}
}
