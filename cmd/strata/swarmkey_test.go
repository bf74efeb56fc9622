package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/mesh"
)

// TestSwarmKeyProcesses drives the binary against a node of a private
// mesh: generate, status and rounds with --swarm-key reach it; without
// the key, or with another one, each fails with a message naming the flag
// rather than waiting for its timeout.
func TestSwarmKeyProcesses(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if _, stderr, err := run(t, bin, "synth", "--repo", repo, "--layers", "2"); err != nil {
		t.Fatalf("strata synth: %v\n%s", err, stderr)
	}
	id, stderr, err := run(t, bin, "id", "--repo", repo)
	if err != nil {
		t.Fatalf("strata id: %v\n%s", err, stderr)
	}
	keys := map[string]string{}
	for _, name := range []string{"swarm.key", "other.key"} {
		file, err := mesh.NewSwarmKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = filepath.Join(dir, name)
		if err := os.WriteFile(keys[name], file, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", freeTCPPort(t), strings.TrimSpace(id))
	listen := addr[:strings.Index(addr, "/p2p/")]
	node := exec.Command(bin, "node", "--repo", repo, "--listen", listen, "--no-mdns", "--swarm-key", keys["swarm.key"])
	var nodeErr strings.Builder
	node.Stderr = &nodeErr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		node.Process.Signal(os.Interrupt)
		node.Wait()
	})

	// The node is up once a status query with the key gets through and
	// says it serves the whole model (it answers status while it loads).
	var out string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var js string
		if js, _, err = run(t, bin, "status", "--peer", addr, "--swarm-key", keys["swarm.key"], "--json"); err == nil {
			var st struct{ Covered bool }
			if err = json.Unmarshal([]byte(js), &st); err == nil && !st.Covered {
				err = errors.New("the node does not serve its model yet")
			}
			if err == nil {
				out, _, err = run(t, bin, "status", "--peer", addr, "--swarm-key", keys["swarm.key"])
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status of a serving node with its key after a minute: %v\nnode: %s", err, nodeErr.String())
		}
	}
	if err != nil {
		t.Fatalf("strata status --swarm-key: %v", err)
	}
	if !strings.Contains(out, strings.TrimSpace(id)) {
		t.Errorf("strata status --swarm-key printed\n%s\nwant the node's id", out)
	}
	out, stderr, err = run(t, bin, "generate", "--peer", addr, "--swarm-key", keys["swarm.key"], "-n", "8", "-t", "0", "a")
	if err != nil || len(strings.TrimSpace(out)) == 0 {
		t.Errorf("strata generate --swarm-key: %v, printed %q\n%s", err, out, stderr)
	}
	_, stderr, err = run(t, bin, "rounds", "--peer", addr, "--swarm-key", keys["swarm.key"])
	if err == nil || !strings.Contains(stderr, "no training run") {
		t.Errorf("strata rounds --swarm-key: %v\n%s\nwant the node's answer that it is in no run", err, stderr)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"generate without a key", []string{"generate", "--peer", addr, "-n", "8", "a"}, "give its key with --swarm-key"},
		{"rounds without a key", []string{"rounds", "--peer", addr}, "give its key with --swarm-key"},
		{"status without a key", []string{"status", "--peer", addr}, "give its key with --swarm-key"},
		{"generate with another key", []string{"generate", "--peer", addr, "--swarm-key", keys["other.key"], "-n", "8", "a"},
			"check that " + keys["other.key"] + " is the key of its mesh"},
	} {
		start := time.Now()
		_, stderr, err := run(t, bin, c.args...)
		if err == nil || !strings.Contains(stderr, "handshake failed") || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: %v\n%s\nwant a handshake failure saying %q", c.name, err, stderr, c.want)
		}
		t.Logf("%s: failed after %v", c.name, time.Since(start).Round(10*time.Millisecond))
	}
}
