package shards

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Sum returns the CID of data: CIDv1, codec raw (0x55), sha2-256 multihash.
// Its string form is base32 ("bafkrei…").
func Sum(data []byte) cid.Cid {
	d := sha256.Sum256(data)
	return cidOf(d[:])
}

func cidOf(digest []byte) cid.Cid {
	buf := make([]byte, 0, 2+len(digest))
	buf = append(buf, mh.SHA2_256, sha256.Size)
	buf = append(buf, digest...)
	return cid.NewCidV1(cid.Raw, mh.Multihash(buf))
}

// CheckCID reports whether c is a CID this package produces: defined,
// version 1, codec raw, multihash sha2-256 with a full 32-byte digest.
func CheckCID(c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("%w: undefined CID", ErrCID)
	}
	p := c.Prefix()
	switch {
	case p.Version != 1:
		return fmt.Errorf("%w: %s is CIDv%d, want CIDv1", ErrCID, c, p.Version)
	case p.Codec != cid.Raw:
		return fmt.Errorf("%w: %s has codec 0x%x, want raw (0x55)", ErrCID, c, p.Codec)
	case p.MhType != mh.SHA2_256:
		return fmt.Errorf("%w: %s has multihash 0x%x, want sha2-256 (0x12)", ErrCID, c, p.MhType)
	case p.MhLength != sha256.Size:
		return fmt.Errorf("%w: %s has a %d-byte digest, want %d", ErrCID, c, p.MhLength, sha256.Size)
	}
	return nil
}

// ParseCID parses the string form of a CID and checks it with CheckCID.
func ParseCID(s string) (cid.Cid, error) {
	if s == "" {
		return cid.Undef, fmt.Errorf("%w: empty CID", ErrCID)
	}
	if len(s) > 256 {
		return cid.Undef, fmt.Errorf("%w: CID string of %d bytes is too long", ErrCID, len(s))
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %.80q: %w", ErrCID, s, err)
	}
	if err := CheckCID(c); err != nil {
		return cid.Undef, err
	}
	return c, nil
}

// Verify reports whether data hashes to c. It returns an error wrapping
// ErrCID if c is not a supported CID and ErrMismatch if the hash differs.
func Verify(c cid.Cid, data []byte) error {
	if err := CheckCID(c); err != nil {
		return err
	}
	if got := Sum(data); !bytes.Equal(got.Bytes(), c.Bytes()) {
		return fmt.Errorf("%w: %d bytes hash to %s, want %s", ErrMismatch, len(data), got, c)
	}
	return nil
}
