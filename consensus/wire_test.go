package consensus

import (
	"errors"
	"reflect"
	"testing"
)

func sampleMessages() []Message {
	return []Message{
		{Kind: KindPropose, Round: 3, View: 2, From: "a", Base: "bafybase", Deltas: []string{"d1", "d2"},
			Rule: "fedavg", Result: "bafyres", Sig: []byte{1, 2, 3}},
		{Kind: KindPropose, Round: 3, View: 4, POL: 2, From: "a", Base: "bafybase", Deltas: []string{"d1"},
			Rule: "fedavg", Result: "bafyres", Sig: []byte{1, 2, 3}, Votes: []Vote{{From: "b", Sig: []byte{4}}}},
		{Kind: KindPrevote, Round: 1, View: 5, From: "b", Base: "bafybase", Result: "", Sig: []byte{9}},
		{Kind: KindPrecommit, Round: 1, View: 5, POL: 6, From: "b", Base: "bafybase", Result: "r", Sig: []byte{9},
			Votes: []Vote{{From: "a", Sig: []byte{1}}}},
		{Kind: KindCommit, Round: 7, View: 1, From: "c", Base: "x", Result: "y",
			Votes: []Vote{{From: "a", Sig: []byte{1}}, {From: "b", Sig: []byte{2}}}},
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary(%v): %v", m.Kind, err)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal(%v): %v", m.Kind, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
}

func TestWireRejects(t *testing.T) {
	good, _ := sampleMessages()[0].MarshalBinary()
	local, _ := (Message{Kind: KindPrevote, Round: 1, From: "a"}).MarshalBinary()
	local[1] = byte(KindChecked)
	noFrom, _ := (Message{Kind: KindPrevote, Round: 1, From: "a"}).MarshalBinary()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"version":   append([]byte{1}, good[1:]...),
		"local":     local,
		"hugeviews": {2, 1, 1, 0x80, 0x01},
		"hugepol":   {2, 1, 1, 0, 0x80, 0x01},
		"nofrom":    append(append([]byte{}, noFrom[:5]...), append([]byte{0}, noFrom[7:]...)...),
	} {
		if _, err := Unmarshal(b); !errors.Is(err, ErrDecode) {
			t.Errorf("%s: got %v, want ErrDecode", name, err)
		}
	}
	if _, err := (Message{Kind: KindChecked}).MarshalBinary(); err == nil {
		t.Errorf("MarshalBinary of a local kind: got nil error")
	}
}

func TestCertificateRoundTrip(t *testing.T) {
	c := Certificate{Round: 2, View: 3, Base: "b", Result: "r", Votes: []Vote{{From: "a", Sig: []byte{7}}}}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalCertificate(b)
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("got %+v, %v; want %+v", got, err, c)
	}
	vote, _ := sampleMessages()[1].MarshalBinary()
	if _, err := UnmarshalCertificate(vote); !errors.Is(err, ErrDecode) {
		t.Errorf("vote as certificate: got %v, want ErrDecode", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			return
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode of decoded message: %v", err)
		}
		if string(b) != string(data) {
			t.Fatalf("decoded message re-encodes differently")
		}
		if len(m.Deltas) > MaxDeltas || len(m.Votes) > MaxRoster || len(m.Sig) > MaxSig {
			t.Fatalf("bounds not enforced: %d deltas, %d votes, %d sig bytes", len(m.Deltas), len(m.Votes), len(m.Sig))
		}
	})
}

// FuzzStep feeds decoded peer messages to a node: whatever a peer sends,
// Step must not panic and the node must not vote twice in a round.
func FuzzStep(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := m.MarshalBinary()
		f.Add(b, uint8(3))
	}
	good := certFor([]string{"a", "b", "c"}, 1, 0, testGenesis, "r1")
	b, _ := certMessage("a", good).MarshalBinary()
	f.Add(b, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, ticks uint8) {
		s := newSim([]string{"a", "b", "c", "d"}, nil, nil)
		m, err := Unmarshal(data)
		if err != nil {
			return
		}
		for _, id := range s.honest() {
			s.nodes[id].Step(m)
			s.process(id)
		}
		for range ticks % 16 {
			s.tick()
			s.deliver()
		}
		if err := s.checkVotes(); err != nil {
			t.Fatal(err)
		}
	})
}
