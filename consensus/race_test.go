//go:build race

package consensus

// The race detector slows the randomized test about sevenfold.
func init() { raceEnabled = true }
