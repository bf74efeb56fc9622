package mesh

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	payloads := [][]byte{{}, []byte("hello"), bytes.Repeat([]byte{7}, smallFrame), bytes.Repeat([]byte{9}, smallFrame*3+1)}
	for _, p := range payloads {
		if err := WriteFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range payloads {
		got, err := ReadFrame(&buf, 1<<20)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	if _, err := ReadFrame(&buf, 1<<20); err != io.EOF {
		t.Fatalf("after last frame err = %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"too large", []byte{0, 0, 1, 0, 'x'}, 255, ErrFrameTooLarge},
		{"max uint32", []byte{0xff, 0xff, 0xff, 0xff}, 1 << 20, ErrFrameTooLarge},
		{"short header", []byte{0, 0}, 10, io.ErrUnexpectedEOF},
		{"short body", []byte{0, 0, 0, 5, 'a', 'b'}, 10, io.ErrUnexpectedEOF},
		{"empty", nil, 10, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := ReadFrame(bytes.NewReader(nil), -1); err == nil {
		t.Fatal("negative max accepted")
	}
}

func TestReadFrameExactMax(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte("abcd")); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(&buf, 4)
	if err != nil || string(got) != "abcd" {
		t.Fatalf("got %q, %v; want \"abcd\", nil", got, err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0}, 16)
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'}, 16)
	f.Add([]byte{0, 0, 0, 3, 'a'}, 16)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 1<<20)
	f.Add([]byte{0, 0, 0, 2, 'h', 'i', 0, 0, 0, 1, '!'}, 2)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max > 1<<20 {
			max = 1 << 20
		}
		r := bytes.NewReader(data)
		for {
			before := r.Len()
			p, err := ReadFrame(r, max)
			if err != nil {
				if errors.Is(err, io.EOF) && before != 0 {
					t.Fatalf("io.EOF with %d unread bytes", before)
				}
				return
			}
			if len(p) > max {
				t.Fatalf("frame of %d bytes exceeds max %d", len(p), max)
			}
			if consumed := before - r.Len(); consumed != len(p)+frameHeader {
				t.Fatalf("consumed %d bytes for a %d-byte frame", consumed, len(p))
			}
			var buf bytes.Buffer
			if err := WriteFrame(&buf, p); err != nil {
				t.Fatal(err)
			}
			again, err := ReadFrame(&buf, max)
			if err != nil || !bytes.Equal(again, p) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func BenchmarkFrameRoundTrip(b *testing.B) {
	p := make([]byte, 64<<10)
	var buf bytes.Buffer
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		buf.Reset()
		if err := WriteFrame(&buf, p); err != nil {
			b.Fatal(err)
		}
		if _, err := ReadFrame(&buf, len(p)); err != nil {
			b.Fatal(err)
		}
	}
}

// stingyReader returns at most 1000 bytes per Read, like a slow stream.
type stingyReader struct{ r io.Reader }

func (s stingyReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 1000)]) }

func TestReadFrameLargeIncremental(t *testing.T) {
	p := make([]byte, 5*readChunk+123)
	for i := range p {
		p[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, p); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	got, err := ReadFrame(stingyReader{bytes.NewReader(whole)}, len(p))
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("large frame: %d bytes, %v; want %d bytes", len(got), err, len(p))
	}
	// Truncated large frame.
	_, err = ReadFrame(stingyReader{bytes.NewReader(whole[:len(whole)-1])}, len(p))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated large frame: err = %v, want io.ErrUnexpectedEOF", err)
	}
	// A header announcing a huge frame followed by a few bytes must not
	// allocate the announced size.
	hdr := []byte{0x04, 0, 0, 0, 1, 2, 3} // 64 MiB announced
	var ms1, ms2 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	_, err = ReadFrame(bytes.NewReader(hdr), 1<<30)
	runtime.ReadMemStats(&ms2)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if grew := ms2.TotalAlloc - ms1.TotalAlloc; grew > 1<<20 {
		t.Fatalf("allocated %d bytes for a stalled 64 MiB frame", grew)
	}
}
