package train

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/strata-mesh/strata/model"
)

// Limits on a checkpoint read from a file or a peer.
const (
	// MaxModelRef bounds Checkpoint.Model (a CID string is ~60 bytes).
	MaxModelRef = 256
	// MaxStateBytes bounds Checkpoint.Optimizer.
	MaxStateBytes = 1 << 34
)

const checkpointMagic = "STCKPT\x00\x00"

const checkpointVersion = 1

// Checkpoint is the training position of an interrupted run: with the
// model version it names and the same corpus, configuration and seed, a
// restarted run continues bitwise as if it had not stopped. The weights
// are not in it: the caller saves them as a content-addressed model
// version and records its id in Model.
type Checkpoint struct {
	Step     uint64   // optimizer steps taken (the schedule's next step)
	SeqLen   int      // window length the data position refers to
	Seed     uint64   // data-shuffle seed; with Position it is the whole sampler RNG state
	Position Position // next window of the data stream
	Model    string   // id (CID) of the weights after Step steps
	// Optimizer is Optimizer.MarshalBinary's output.
	Optimizer []byte
}

// MarshalBinary encodes c, little-endian:
//
//	magic    [8]byte "STCKPT\x00\x00"
//	version  uint32  1
//	step     uint64
//	seqlen   uint32
//	seed     uint64
//	epoch    uint64
//	index    uint64
//	modellen uint32, model [modellen]byte (UTF-8, ≤ MaxModelRef)
//	optlen   uint64, optimizer [optlen]byte (≤ MaxStateBytes)
func (c *Checkpoint) MarshalBinary() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, 8+4+8+4+8+8+8+4+len(c.Model)+8+len(c.Optimizer))
	out = append(out, checkpointMagic...)
	out = binary.LittleEndian.AppendUint32(out, checkpointVersion)
	out = binary.LittleEndian.AppendUint64(out, c.Step)
	out = binary.LittleEndian.AppendUint32(out, uint32(c.SeqLen))
	out = binary.LittleEndian.AppendUint64(out, c.Seed)
	out = binary.LittleEndian.AppendUint64(out, c.Position.Epoch)
	out = binary.LittleEndian.AppendUint64(out, c.Position.Index)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(c.Model)))
	out = append(out, c.Model...)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(c.Optimizer)))
	out = append(out, c.Optimizer...)
	return out, nil
}

// UnmarshalBinary decodes a checkpoint written by MarshalBinary, checking
// every length against the limits and the bytes present and rejecting
// trailing bytes. Errors wrap ErrFormat; c is unchanged on error. The
// optimizer state inside is checked by Optimizer.UnmarshalBinary.
func (c *Checkpoint) UnmarshalBinary(data []byte) error {
	d := decoder{data: data}
	if magic := d.bytes(8, "magic"); d.err == nil && string(magic) != checkpointMagic {
		return fmt.Errorf("%w: not a training checkpoint (bad magic %q)", ErrFormat, magic)
	}
	if v := d.u32("version"); d.err == nil && v != checkpointVersion {
		return fmt.Errorf("%w: checkpoint version %d, want %d", ErrFormat, v, checkpointVersion)
	}
	var n Checkpoint
	n.Step = d.u64("step")
	n.SeqLen = int(d.u32("sequence length"))
	n.Seed = d.u64("seed")
	n.Position.Epoch = d.u64("epoch")
	n.Position.Index = d.u64("index")
	ml := d.u32("model length")
	if d.err == nil && ml > MaxModelRef {
		return fmt.Errorf("%w: model reference of %d bytes exceeds %d", ErrFormat, ml, MaxModelRef)
	}
	n.Model = string(d.bytes(int(ml), "model"))
	ol := d.u64("optimizer length")
	if d.err != nil {
		return d.err
	}
	if ol > MaxStateBytes || ol > uint64(d.left()) {
		return fmt.Errorf("%w: optimizer state of %d bytes, %d present (limit %d)", ErrFormat, ol, d.left(), uint64(MaxStateBytes))
	}
	n.Optimizer = append([]byte(nil), d.bytes(int(ol), "optimizer")...)
	if d.left() != 0 {
		return fmt.Errorf("%w: %d bytes after the checkpoint", ErrFormat, d.left())
	}
	if err := n.validate(); err != nil {
		return err
	}
	*c = n
	return nil
}

// validate checks the fields both directions share.
func (c *Checkpoint) validate() error {
	switch {
	case c.SeqLen < 1 || c.SeqLen > model.MaxSeqLen:
		return fmt.Errorf("%w: checkpoint sequence length %d out of range [1, %d]", ErrFormat, c.SeqLen, model.MaxSeqLen)
	case len(c.Model) > MaxModelRef || !utf8.ValidString(c.Model):
		return fmt.Errorf("%w: checkpoint model reference is not UTF-8 of at most %d bytes", ErrFormat, MaxModelRef)
	case uint64(len(c.Optimizer)) > MaxStateBytes:
		return fmt.Errorf("%w: optimizer state of %d bytes exceeds %d", ErrFormat, len(c.Optimizer), uint64(MaxStateBytes))
	}
	return nil
}
