package consensus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// MaxMessage bounds an encoded message in bytes.
const MaxMessage = 1 << 21

const wireVersion = 2

const flagNil = 1

func flags(m Message) byte {
	if m.Nil {
		return flagNil
	}
	return 0
}

// MarshalBinary encodes a peer message (propose, prevote, precommit or commit) in the
// canonical wire form Unmarshal accepts.
func (m Message) MarshalBinary() ([]byte, error) {
	if !m.Kind.remote() {
		return nil, fmt.Errorf("consensus: cannot encode local message kind %v", m.Kind)
	}
	b := []byte{wireVersion, byte(m.Kind)}
	b = binary.AppendUvarint(b, uint64(m.Round))
	b = binary.AppendUvarint(b, uint64(m.View))
	b = binary.AppendUvarint(b, uint64(m.POL))
	b = append(b, flags(m))
	for _, s := range []string{m.From, m.Base, m.Rule, m.Result} {
		b = appendStr(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Deltas)))
	for _, d := range m.Deltas {
		b = appendStr(b, d)
	}
	b = appendStr(b, string(m.Sig))
	b = binary.AppendUvarint(b, uint64(len(m.Votes)))
	for _, v := range m.Votes {
		b = appendStr(b, v.From)
		b = appendStr(b, string(v.Sig))
	}
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("consensus: message of %d bytes exceeds %d", len(b), MaxMessage)
	}
	return b, nil
}

// Unmarshal decodes a peer message. It enforces every bound in this
// package, accepts only the canonical encoding and never panics; it does
// not check signatures, which Step does.
func Unmarshal(data []byte) (Message, error) {
	if len(data) > MaxMessage {
		return Message{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrDecode, len(data), MaxMessage)
	}
	d := decoder{b: data}
	var m Message
	if v := d.byte(); v != wireVersion && d.err == nil {
		return Message{}, fmt.Errorf("%w: version %d, want %d", ErrDecode, v, wireVersion)
	}
	m.Kind = Kind(d.byte())
	m.Round = Round(d.uvarint(1 << 62))
	m.View = uint32(d.uvarint(MaxViews - 1))
	m.POL = uint32(d.uvarint(MaxViews))
	switch f := d.byte(); f {
	case 0:
	case flagNil:
		m.Nil = true
	default:
		d.fail("flags %#x", f)
	}
	m.From = d.str(MaxID)
	m.Base = d.str(MaxID)
	m.Rule = d.str(MaxID)
	m.Result = d.str(MaxID)
	if n := d.uvarint(MaxDeltas); n > 0 {
		m.Deltas = make([]string, 0, min(n, uint64(len(d.b))))
		for range n {
			if m.Deltas = append(m.Deltas, d.str(MaxID)); d.err != nil {
				break
			}
		}
	}
	if s := d.str(MaxSig); s != "" {
		m.Sig = []byte(s)
	}
	if n := d.uvarint(MaxRoster); n > 0 {
		m.Votes = make([]Vote, 0, min(n, uint64(len(d.b))))
		for range n {
			from, sig := d.str(MaxID), d.str(MaxSig)
			if d.err != nil {
				break
			}
			m.Votes = append(m.Votes, Vote{From: from, Sig: []byte(sig)})
		}
	}
	if d.err != nil {
		return Message{}, d.err
	}
	if len(d.b) != 0 {
		return Message{}, fmt.Errorf("%w: %d trailing bytes", ErrDecode, len(d.b))
	}
	if !m.Kind.remote() {
		return Message{}, fmt.Errorf("%w: kind %d is not a peer message", ErrDecode, m.Kind)
	}
	if !validID(m.From) {
		return Message{}, fmt.Errorf("%w: empty sender", ErrDecode)
	}
	if m.Nil && (m.Kind != KindPrevote && m.Kind != KindPrecommit || m.Result != "" || m.POL != 0 || len(m.Votes) != 0) {
		return Message{}, fmt.Errorf("%w: a nil %v with a value", ErrDecode, m.Kind)
	}
	if again, err := m.MarshalBinary(); err != nil || !bytes.Equal(again, data) {
		return Message{}, fmt.Errorf("%w: non-canonical encoding", ErrDecode)
	}
	return m, nil
}

// MarshalBinary encodes c as a commit message from nobody in particular.
func (c Certificate) MarshalBinary() ([]byte, error) {
	return certMessage("certificate", c).MarshalBinary()
}

// UnmarshalCertificate decodes a certificate encoded by
// Certificate.MarshalBinary or carried by a commit message. It does not
// verify it: use VerifyCertificate.
func UnmarshalCertificate(data []byte) (Certificate, error) {
	m, err := Unmarshal(data)
	if err != nil {
		return Certificate{}, err
	}
	if m.Kind != KindCommit {
		return Certificate{}, fmt.Errorf("%w: kind %v is not a certificate", ErrDecode, m.Kind)
	}
	return m.Certificate(), nil
}

// Certificate returns the certificate a commit message carries.
func (m Message) Certificate() Certificate {
	return Certificate{Round: m.Round, View: m.View, Base: m.Base, Result: m.Result, Votes: slices.Clone(m.Votes)}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrDecode}, args...)...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	if v > max {
		d.fail("value %d exceeds %d", v, max)
		return 0
	}
	return v
}

func (d *decoder) str(max int) string {
	n := d.uvarint(uint64(max))
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.fail("truncated string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
