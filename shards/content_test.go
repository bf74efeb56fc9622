package shards

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	c := Sum([]byte("object"))
	for _, r := range []request{
		{CID: c, Offset: 0, Length: 0},
		{CID: c, Offset: 12345, Length: MaxRequest},
		{CID: c, Offset: MaxObjectSize, Length: 1},
	} {
		enc := appendRequest(nil, r)
		var buf [requestSize]byte
		got, err := readRequest(bytes.NewReader(enc), &buf)
		if err != nil {
			t.Fatalf("readRequest(%+v): %v", r, err)
		}
		if !got.CID.Equals(r.CID) || got.Offset != r.Offset || got.Length != r.Length {
			t.Errorf("got %+v, want %+v", got, r)
		}
	}
}

func TestReadRequestRejects(t *testing.T) {
	c := Sum([]byte("object"))
	good := appendRequest(nil, request{CID: c, Offset: 1, Length: 2})
	n := len(c.Bytes())
	tests := []struct {
		name string
		in   []byte
	}{
		{"zero-length CID", []byte{0}},
		{"oversized CID", append([]byte{maxCIDBytes + 1}, make([]byte, 100)...)},
		{"truncated", good[:len(good)-1]},
		{"garbage CID", append([]byte{36}, make([]byte, 48)...)},
		{"too long", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint32(b[1+n+8:], MaxRequest+1)
			return b
		}()},
		{"offset beyond any object", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint64(b[1+n:], uint64(MaxObjectSize)+1)
			return b
		}()},
		{"CIDv0-like codec", func() []byte {
			b := bytes.Clone(good)
			b[2] = 0x70 // dag-pb codec
			return b
		}()},
	}
	for _, tt := range tests {
		var buf [requestSize]byte
		_, err := readRequest(bytes.NewReader(tt.in), &buf)
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", tt.name, err)
		}
	}
	var buf [requestSize]byte
	if _, err := readRequest(bytes.NewReader(nil), &buf); err != io.EOF {
		t.Errorf("empty stream: err = %v, want io.EOF", err)
	}
}

func TestHeaderRoundTripAndRejects(t *testing.T) {
	var buf [headerSize]byte
	h := header{Status: statusOK, Total: 1 << 30, N: MaxRequest}
	got, err := readHeader(bytes.NewReader(appendHeader(nil, h)), &buf)
	if err != nil || got != h {
		t.Fatalf("readHeader = %+v, %v; want %+v", got, err, h)
	}
	for _, bad := range []header{
		{Status: maxStatus + 1},
		{Status: statusOK, N: MaxRequest + 1},
		{Status: statusNotFound, N: maxMessage + 1},
	} {
		if _, err := readHeader(bytes.NewReader(appendHeader(nil, bad)), &buf); !errors.Is(err, ErrProtocol) {
			t.Errorf("header %+v: err = %v, want ErrProtocol", bad, err)
		}
	}
	big := appendHeader(nil, header{})
	binary.BigEndian.PutUint64(big[1:], uint64(MaxObjectSize)+1)
	if _, err := readHeader(bytes.NewReader(big), &buf); !errors.Is(err, ErrProtocol) {
		t.Errorf("oversized total: err = %v, want ErrProtocol", err)
	}
}

func FuzzReadRequest(f *testing.F) {
	c := Sum([]byte("seed"))
	f.Add(appendRequest(nil, request{CID: c, Offset: 0, Length: 0}))
	f.Add(appendRequest(nil, request{CID: c, Offset: 1 << 20, Length: MaxRequest}))
	f.Add([]byte{0})
	f.Add([]byte{36, 1, 0x55, 0x12, 0x20})
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf [requestSize]byte
		r := bytes.NewReader(data)
		req, err := readRequest(r, &buf)
		if err != nil {
			return
		}
		if read := len(data) - r.Len(); read > requestSize {
			t.Fatalf("read %d bytes, more than %d", read, requestSize)
		}
		if req.Length < 0 || req.Length > MaxRequest || req.Offset < 0 || req.Offset > MaxObjectSize {
			t.Fatalf("accepted out-of-bounds request %+v", req)
		}
		if CheckCID(req.CID) != nil {
			t.Fatalf("accepted unsupported CID %s", req.CID)
		}
		enc := appendRequest(nil, req)
		if !bytes.Equal(enc, data[:len(enc)]) {
			t.Fatalf("re-encoding %x differs from input %x", enc, data[:len(enc)])
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	f.Add(appendHeader(nil, header{Status: statusOK, Total: 100, N: 10}))
	f.Add(appendHeader(nil, header{Status: statusNotFound, N: 20}))
	f.Add([]byte{9, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf [headerSize]byte
		h, err := readHeader(bytes.NewReader(data), &buf)
		if err != nil {
			return
		}
		if h.Status > maxStatus || h.Total < 0 || h.Total > MaxObjectSize || h.N < 0 || h.N > MaxRequest ||
			(h.Status != statusOK && h.N > maxMessage) {
			t.Fatalf("accepted out-of-bounds header %+v", h)
		}
		if !bytes.Equal(appendHeader(nil, h), data[:headerSize]) {
			t.Fatalf("re-encoding differs from input")
		}
		if h.Status != statusOK {
			msg, err := readMessage(bytes.NewReader(data[headerSize:]), h.N)
			if err == nil && len(msg) > 3*maxMessage {
				t.Fatalf("message of %d bytes", len(msg))
			}
		}
	})
}
