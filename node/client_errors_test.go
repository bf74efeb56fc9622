package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
)

// TestQueryEntryKilled: the entry peer goes away in the middle of a
// generation; the client's error names it.
func TestQueryEntryKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, _ := refRepo(t)
	n, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	closed := make(chan struct{})
	count := 0
	_, err = Client{}.Query(ctx, n.Addrs()[0], infer.Request{Steps: 0, Temperature: 1, TopP: 0.9, Seed: 1}, func(infer.Token) error {
		if count++; count == 3 {
			go func() { n.mesh.Close(); close(closed) }()
			select { // the kill resets the stream while this token is held
			case <-closed:
			case <-time.After(10 * time.Second):
			}
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "generation via "+n.ID()) {
		t.Fatalf("err = %v, want one naming the entry %s", err, n.ID())
	}
	t.Log(err)
}
