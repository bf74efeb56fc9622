package shards

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/tensor"
)

// ManifestFormat is the value of the manifest's "format" field.
const ManifestFormat = "strata/manifest/1"

// Manifest limits.
const (
	// MaxManifestSize bounds an encoded manifest.
	MaxManifestSize = 16 << 20
	// DefaultChunkSize is the chunk size Import uses.
	DefaultChunkSize = 1 << 20
	// MinChunkSize and MaxChunkSize bound a manifest's chunk_size.
	MinChunkSize = 4 << 10
	MaxChunkSize = 64 << 20
	// MaxNameSize bounds the model name, in bytes.
	MaxNameSize = 256
)

// MaxObjectSize bounds one shard (and any object in a Store).
const MaxObjectSize int64 = 4 << 30

// Digest is a sha2-256 digest of one chunk. In JSON it is 64 lowercase hex
// digits.
type Digest [sha256.Size]byte

// MarshalText encodes d as lowercase hex.
func (d Digest) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(d[:])), nil
}

// UnmarshalText decodes 64 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*len(d) {
		return fmt.Errorf("chunk digest has %d hex digits, want %d", len(b), 2*len(d))
	}
	_, err := hex.Decode(d[:], b)
	return err
}

// Ref names one shard: its CID, its size in bytes and, for a shard larger
// than the manifest's chunk size, the sha2-256 of each chunk in order
// (chunk k covers bytes [k·chunk_size, min((k+1)·chunk_size, size))).
type Ref struct {
	CID    cid.Cid
	Size   int64
	Chunks []Digest
}

// Manifest describes one version of a model: its architecture, the shard
// of every block, the head shard and the version it was derived from. The
// model id is the CID of its canonical encoding (see CID).
type Manifest struct {
	Format string // ManifestFormat
	Name   string
	Config model.Config
	// Weights is the format of the blocks' matrices: "" for float32, or
	// "q8_0" / "q4_0" (tensor.QFormat names) when every block is quantized.
	Weights   string
	Head      Ref
	Blocks    []Ref // Blocks[i] is transformer block i; len == Config.NLayers
	ChunkSize int
	Parent    cid.Cid // the manifest this version was trained from, or cid.Undef
	// Round, for a version a federated round committed, says how it was
	// made from Parent; nil otherwise.
	Round *RoundInfo
}

// Bounds on a manifest's round record.
const (
	MaxContributions = 4096 // contributions named by one round
	MaxPeerID        = 256  // bytes in a contributor's peer id
)

// RoundInfo records the federated round that made a version: the run, the
// round, the aggregation rule, the contributions that went in and the
// outer optimizer's state afterwards. Every field is deterministic, so all
// honest nodes build the same manifest and agree on its CID.
type RoundInfo struct {
	Run   string  `json:"run"`             // CID of the run's spec
	Round uint64  `json:"round"`           // from 1
	Rule  string  `json:"rule"`            // aggregation rule
	Outer string  `json:"outer,omitempty"` // CID of the outer optimizer state, if it keeps one
	Loss  float32 `json:"loss"`            // contributors' sample-weighted mean training loss
	// Contributions are sorted by Delta.
	Contributions []Contribution `json:"contributions"`
}

// Contribution is one participant's update in a round.
type Contribution struct {
	Peer    string  `json:"peer"`    // peer id of the participant
	Delta   string  `json:"delta"`   // CID of its encoded pseudo-gradient
	Samples uint64  `json:"samples"` // tokens it trained on
	Loss    float32 `json:"loss"`    // its mean training loss
}

func (r *RoundInfo) validate() error {
	finite := func(x float32) bool { return x == x && x-x == 0 }
	switch {
	case r.Round == 0:
		return fmt.Errorf("%w: round record: round 0", ErrManifest)
	case r.Rule == "" || len(r.Rule) > 64 || !utf8.ValidString(r.Rule):
		return fmt.Errorf("%w: round record: rule %.64q", ErrManifest, r.Rule)
	case !finite(r.Loss):
		return fmt.Errorf("%w: round record: loss is not finite", ErrManifest)
	case len(r.Contributions) == 0 || len(r.Contributions) > MaxContributions:
		return fmt.Errorf("%w: round record: %d contributions, want 1..%d", ErrManifest, len(r.Contributions), MaxContributions)
	}
	if _, err := ParseCID(r.Run); err != nil {
		return fmt.Errorf("%w: round record: run: %w", ErrManifest, err)
	}
	if r.Outer != "" {
		if _, err := ParseCID(r.Outer); err != nil {
			return fmt.Errorf("%w: round record: outer state: %w", ErrManifest, err)
		}
	}
	for i, c := range r.Contributions {
		if c.Peer == "" || len(c.Peer) > MaxPeerID || !utf8.ValidString(c.Peer) {
			return fmt.Errorf("%w: round record: contribution %d: peer id %.64q", ErrManifest, i, c.Peer)
		}
		if _, err := ParseCID(c.Delta); err != nil {
			return fmt.Errorf("%w: round record: contribution %d: %w", ErrManifest, i, err)
		}
		if !finite(c.Loss) {
			return fmt.Errorf("%w: round record: contribution %d: loss is not finite", ErrManifest, i)
		}
		if i > 0 && r.Contributions[i-1].Delta >= c.Delta {
			return fmt.Errorf("%w: round record: contributions not sorted by delta, or repeated", ErrManifest)
		}
	}
	return nil
}

type wireRef struct {
	CID    string   `json:"cid"`
	Size   int64    `json:"size"`
	Chunks []Digest `json:"chunks,omitempty"`
}

// wireManifest fixes the field order of the canonical encoding.
type wireManifest struct {
	Format    string       `json:"format"`
	Name      string       `json:"name"`
	Config    model.Config `json:"config"`
	Weights   string       `json:"weights,omitempty"`
	Head      wireRef      `json:"head"`
	Blocks    []wireRef    `json:"blocks"`
	ChunkSize int          `json:"chunk_size"`
	Parent    string       `json:"parent"`
	Round     *RoundInfo   `json:"round,omitempty"`
}

// NewRef describes data as a shard split into chunks of chunkSize bytes.
func NewRef(data []byte, chunkSize int) Ref {
	r := Ref{CID: Sum(data), Size: int64(len(data))}
	if chunkSize > 0 && len(data) > chunkSize {
		for off := 0; off < len(data); off += chunkSize {
			r.Chunks = append(r.Chunks, sha256.Sum256(data[off:min(off+chunkSize, len(data))]))
		}
	}
	return r
}

// NumChunks is the number of chunkSize pieces in size bytes (at least 1).
func NumChunks(size int64, chunkSize int) int {
	if size <= int64(chunkSize) {
		return 1
	}
	return int((size + int64(chunkSize) - 1) / int64(chunkSize))
}

// VerifyChunk checks chunk i of the shard ref against the manifest: its
// length, and its digest when the shard has a chunk list. A shard no larger
// than one chunk has a single chunk, checked against the CID itself.
func (m *Manifest) VerifyChunk(ref Ref, i int, data []byte) error {
	n := NumChunks(ref.Size, m.ChunkSize)
	if i < 0 || i >= n {
		return fmt.Errorf("%w: chunk %d of %s out of range (0..%d)", ErrManifest, i, ref.CID, n-1)
	}
	want := int64(m.ChunkSize)
	if i == n-1 {
		want = ref.Size - int64(i)*int64(m.ChunkSize)
	}
	if int64(len(data)) != want {
		return fmt.Errorf("%w: chunk %d of %s has %d bytes, want %d", ErrMismatch, i, ref.CID, len(data), want)
	}
	if len(ref.Chunks) == 0 {
		return Verify(ref.CID, data)
	}
	if Digest(sha256.Sum256(data)) != ref.Chunks[i] {
		return fmt.Errorf("%w: chunk %d of %s", ErrMismatch, i, ref.CID)
	}
	return nil
}

// WeightFormat returns the weight format Weights names: 0 for float32 (""),
// tensor.Q8_0 or tensor.Q4_0. Any other value is an error wrapping
// ErrManifest.
func (m *Manifest) WeightFormat() (tensor.QFormat, error) {
	if m.Weights == "" {
		return 0, nil
	}
	f, err := tensor.ParseQFormat(m.Weights)
	if err != nil {
		return 0, fmt.Errorf("%w: weights: %w", ErrManifest, err)
	}
	return f, nil
}

// Objects lists the CIDs of every shard: the head, then blocks in order.
func (m *Manifest) Objects() []cid.Cid {
	out := make([]cid.Cid, 0, 1+len(m.Blocks))
	out = append(out, m.Head.CID)
	for _, b := range m.Blocks {
		out = append(out, b.CID)
	}
	return out
}

// Validate checks every field: known format, bounded UTF-8 name, a valid
// config with one block ref per layer, supported CIDs, bounded sizes and
// chunk lists consistent with them.
func (m *Manifest) Validate() error {
	switch {
	case m.Format != ManifestFormat:
		return fmt.Errorf("%w: unknown format %.64q, want %q", ErrManifest, m.Format, ManifestFormat)
	case len(m.Name) > MaxNameSize || !utf8.ValidString(m.Name):
		return fmt.Errorf("%w: name must be UTF-8 of at most %d bytes", ErrManifest, MaxNameSize)
	case m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize:
		return fmt.Errorf("%w: chunk_size %d out of range [%d, %d]", ErrManifest, m.ChunkSize, MinChunkSize, MaxChunkSize)
	}
	if err := m.Config.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if _, err := m.WeightFormat(); err != nil {
		return err
	}
	if len(m.Blocks) != m.Config.NLayers {
		return fmt.Errorf("%w: %d block refs for n_layers %d", ErrManifest, len(m.Blocks), m.Config.NLayers)
	}
	if err := m.checkRef(m.Head); err != nil {
		return fmt.Errorf("head: %w", err)
	}
	for i, b := range m.Blocks {
		if err := m.checkRef(b); err != nil {
			return fmt.Errorf("block %d: %w", i, err)
		}
	}
	if m.Parent.Defined() {
		if err := CheckCID(m.Parent); err != nil {
			return fmt.Errorf("%w: parent: %w", ErrManifest, err)
		}
	}
	if m.Round != nil {
		if !m.Parent.Defined() {
			return fmt.Errorf("%w: a round record needs a parent", ErrManifest)
		}
		if err := m.Round.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) checkRef(r Ref) error {
	if err := CheckCID(r.CID); err != nil {
		return fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if r.Size <= 0 || r.Size > MaxObjectSize {
		return fmt.Errorf("%w: size %d out of range [1, %d]", ErrManifest, r.Size, MaxObjectSize)
	}
	want := 0
	if r.Size > int64(m.ChunkSize) {
		want = NumChunks(r.Size, m.ChunkSize)
	}
	if len(r.Chunks) != want {
		return fmt.Errorf("%w: %d chunk digests for %d bytes in %d-byte chunks, want %d",
			ErrManifest, len(r.Chunks), r.Size, m.ChunkSize, want)
	}
	return nil
}

// Encode returns the canonical encoding: compact JSON, fields in the
// documented order, chunk lists omitted for single-chunk shards. The same
// manifest always encodes to the same bytes.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	w := wireManifest{
		Format:    m.Format,
		Name:      m.Name,
		Config:    m.Config,
		Weights:   m.Weights,
		Head:      toWire(m.Head),
		Blocks:    make([]wireRef, len(m.Blocks)),
		ChunkSize: m.ChunkSize,
	}
	for i, b := range m.Blocks {
		w.Blocks[i] = toWire(b)
	}
	if m.Parent.Defined() {
		w.Parent = m.Parent.String()
	}
	w.Round = m.Round
	out, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if len(out) > MaxManifestSize {
		return nil, fmt.Errorf("%w: encoding of %d bytes exceeds %d", ErrManifest, len(out), MaxManifestSize)
	}
	return out, nil
}

// CID returns the model id: the CID of the canonical encoding.
func (m *Manifest) CID() (cid.Cid, error) {
	b, err := m.Encode()
	if err != nil {
		return cid.Undef, err
	}
	return Sum(b), nil
}

func toWire(r Ref) wireRef {
	return wireRef{CID: r.CID.String(), Size: r.Size, Chunks: r.Chunks}
}

// DecodeManifest parses and validates a manifest. It accepts only the
// canonical encoding, so a model has exactly one id: bytes that decode but
// would re-encode differently (unknown or duplicate fields, whitespace,
// other key order or number spelling) are rejected.
func DecodeManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrManifest, len(data), MaxManifestSize)
	}
	var w wireManifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	m := &Manifest{
		Format:    w.Format,
		Name:      w.Name,
		Config:    w.Config,
		Weights:   w.Weights,
		Blocks:    make([]Ref, len(w.Blocks)),
		ChunkSize: w.ChunkSize,
		Round:     w.Round,
	}
	var err error
	if m.Head, err = fromWire(w.Head); err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	for i, b := range w.Blocks {
		if m.Blocks[i], err = fromWire(b); err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
	}
	if w.Parent != "" {
		if m.Parent, err = ParseCID(w.Parent); err != nil {
			return nil, fmt.Errorf("%w: parent: %w", ErrManifest, err)
		}
	}
	canon, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, data) {
		return nil, fmt.Errorf("%w: not in canonical encoding", ErrManifest)
	}
	return m, nil
}

func fromWire(w wireRef) (Ref, error) {
	c, err := ParseCID(w.CID)
	if err != nil {
		return Ref{}, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	return Ref{CID: c, Size: w.Size, Chunks: w.Chunks}, nil
}
