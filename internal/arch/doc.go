// Package arch holds tests of the project's architecture: the direction of
// imports between packages, which packages may touch libp2p or the
// operating system, and that every package documents its contract.
package arch
