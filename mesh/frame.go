package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// frameHeader is the size of a frame's big-endian u32 length prefix.
const frameHeader = 4

// smallFrame is the payload size up to which WriteFrame coalesces header and
// payload into a single Write.
const smallFrame = 4 << 10

// ReadFrame reads one u32 big-endian length-prefixed frame from r and returns
// its payload. A length above max yields an error wrapping ErrFrameTooLarge
// (the payload is not read). At most max bytes are allocated. A clean end of
// stream before the header returns io.EOF; a stream ending inside a frame
// returns an error wrapping io.ErrUnexpectedEOF. Bodies above 64 KiB are
// buffered as they arrive rather than allocated up front.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	if max < 0 {
		return nil, fmt.Errorf("mesh: read frame: negative max %d", max)
	}
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("mesh: read frame header: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	buf, err := readN(r, int(n))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("mesh: read frame body (%d bytes): %w", n, err)
	}
	return buf, nil
}

// readChunk is the initial buffer for a frame body. Larger bodies grow the
// buffer as bytes actually arrive, so a peer announcing a large frame and
// then stalling cannot make the reader allocate the whole frame up front.
const readChunk = 64 << 10

// readN reads exactly n bytes from r.
func readN(r io.Reader, n int) ([]byte, error) {
	if n <= readChunk {
		buf := make([]byte, n)
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	buf := make([]byte, 0, readChunk)
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), len(buf)))
		}
		k, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		if err != nil && len(buf) < n {
			return nil, err
		}
	}
	return buf, nil
}

// WriteFrame writes p to w as one u32 big-endian length-prefixed frame.
func WriteFrame(w io.Writer, p []byte) error {
	if uint64(len(p)) > math.MaxUint32 {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(p), uint64(math.MaxUint32))
	}
	if len(p) <= smallFrame {
		buf := make([]byte, frameHeader+len(p))
		binary.BigEndian.PutUint32(buf, uint32(len(p)))
		copy(buf[frameHeader:], p)
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("mesh: write frame: %w", err)
		}
		return nil
	}
	var hdr [frameHeader]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(p)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("mesh: write frame header: %w", err)
	}
	if _, err := w.Write(p); err != nil {
		return fmt.Errorf("mesh: write frame body: %w", err)
	}
	return nil
}
