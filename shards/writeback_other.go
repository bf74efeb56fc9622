//go:build !(linux && (amd64 || arm64))

package shards

import "os"

// startWriteback does nothing on this system; the fsync that ends a fetch
// writes everything.
func startWriteback(f *os.File, off, n int64) {}

// preallocate makes f size bytes long.
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }
