package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/shards"
)

// TestFsck runs `strata fsck` on a healthy repo (exit 0) and on one with
// a damaged object (exit 1, the object named on stdout).
func TestFsck(t *testing.T) {
	bin := binary(t)
	repo := filepath.Join(t.TempDir(), "repo")
	st, err := shards.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	good, err := st.Put([]byte("a healthy object"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := st.Put([]byte("an object about to be damaged"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := run(t, bin, "fsck", "--repo", repo)
	if err != nil || stdout != "" || !strings.Contains(stderr, "2 objects") || !strings.Contains(stderr, "0 corrupt") {
		t.Fatalf("healthy repo: %v\nstdout %q\nstderr %q", err, stdout, stderr)
	}
	if err := os.WriteFile(filepath.Join(repo, "objects", bad.String()), []byte("an object ABOUT to be damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = run(t, bin, "fsck", "--repo", repo)
	if err == nil {
		t.Fatalf("damaged repo: exit 0\nstdout %q\nstderr %q", stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "corrupt  "+bad.String()) || strings.Contains(stdout, good.String()) {
		t.Errorf("damaged repo: stdout %q, want one line naming %s", stdout, bad)
	}
	if !strings.Contains(stderr, "1 corrupt") {
		t.Errorf("damaged repo: stderr %q, want the count", stderr)
	}
	if _, _, err := run(t, bin, "fsck", "--repo", filepath.Join(repo, "missing")); err == nil {
		t.Error("fsck of a directory that does not exist: exit 0")
	}
}
