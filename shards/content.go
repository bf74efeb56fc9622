package shards

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/ipfs/go-cid"
)

// ContentProtocol is the stream protocol that serves objects by CID.
const ContentProtocol = "/strata/content/1"

// Content protocol limits.
const (
	// MaxRequest bounds the bytes one request may ask for; a client fetches
	// larger ranges request by request.
	MaxRequest = 4 << 20
	// maxCIDBytes bounds the binary CID in a request (a supported CID has 36).
	maxCIDBytes = 64
	// maxMessage bounds the message that follows an error status.
	maxMessage = 1024
	// requestSize is the largest encoded request.
	requestSize = 1 + maxCIDBytes + 8 + 4
	// headerSize is the size of a response header.
	headerSize = 1 + 8 + 4
)

// Response status codes.
const (
	statusOK          byte = 0 // exactly the requested bytes follow
	statusNotFound    byte = 1 // no such object on this peer
	statusRange       byte = 2 // offset+length beyond the object
	statusBadRequest  byte = 3 // malformed request; the server closes the stream
	statusUnavailable byte = 4 // the object exists but cannot be served (damaged, I/O error)
	maxStatus              = statusUnavailable
)

// request asks for Length bytes of object CID from Offset. Length 0 asks
// only for the object's size.
type request struct {
	CID    cid.Cid
	Offset int64
	Length int
}

// appendRequest encodes r: u8 n, n bytes of binary CID, u64 offset, u32
// length, all big-endian.
func appendRequest(b []byte, r request) []byte {
	cb := r.CID.Bytes()
	b = append(b, byte(len(cb)))
	b = append(b, cb...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Offset))
	return binary.BigEndian.AppendUint32(b, uint32(r.Length))
}

// readRequest decodes one request from r. It reads at most requestSize
// bytes and rejects, with ErrProtocol, CIDs this package does not produce,
// negative offsets and lengths over MaxRequest. A clean end of stream
// before the first byte is io.EOF.
func readRequest(r io.Reader, buf *[requestSize]byte) (request, error) {
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return request{}, err
	}
	n := int(buf[0])
	if n == 0 || n > maxCIDBytes {
		return request{}, fmt.Errorf("%w: CID of %d bytes", ErrProtocol, n)
	}
	b := buf[1 : 1+n+12]
	if _, err := io.ReadFull(r, b); err != nil {
		return request{}, fmt.Errorf("%w: truncated request: %w", ErrProtocol, err)
	}
	c, err := cid.Cast(b[:n])
	if err != nil {
		return request{}, fmt.Errorf("%w: request CID: %w", ErrProtocol, err)
	}
	if err := CheckCID(c); err != nil {
		return request{}, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	off := binary.BigEndian.Uint64(b[n:])
	length := binary.BigEndian.Uint32(b[n+8:])
	if off > uint64(MaxObjectSize) {
		return request{}, fmt.Errorf("%w: offset %d beyond the largest object", ErrProtocol, off)
	}
	if length > MaxRequest {
		return request{}, fmt.Errorf("%w: request for %d bytes exceeds %d", ErrProtocol, length, MaxRequest)
	}
	return request{CID: c, Offset: int64(off), Length: int(length)}, nil
}

// header precedes every response: u8 status, u64 total size of the object
// (0 unless known), u32 n. With statusOK n is the requested length and n
// bytes of the object follow; otherwise n bytes of UTF-8 message follow.
type header struct {
	Status byte
	Total  int64
	N      int
}

func appendHeader(b []byte, h header) []byte {
	b = append(b, h.Status)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Total))
	return binary.BigEndian.AppendUint32(b, uint32(h.N))
}

// readHeader decodes a response header, rejecting unknown statuses, sizes
// beyond MaxObjectSize, bodies over MaxRequest and messages over
// maxMessage.
func readHeader(r io.Reader, buf *[headerSize]byte) (header, error) {
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return header{}, err
	}
	h := header{Status: buf[0]}
	total := binary.BigEndian.Uint64(buf[1:])
	n := binary.BigEndian.Uint32(buf[9:])
	switch {
	case h.Status > maxStatus:
		return header{}, fmt.Errorf("%w: unknown status %d", ErrProtocol, h.Status)
	case total > uint64(MaxObjectSize):
		return header{}, fmt.Errorf("%w: object size %d exceeds %d", ErrProtocol, total, MaxObjectSize)
	case h.Status == statusOK && n > MaxRequest:
		return header{}, fmt.Errorf("%w: response of %d bytes exceeds %d", ErrProtocol, n, MaxRequest)
	case h.Status != statusOK && n > maxMessage:
		return header{}, fmt.Errorf("%w: error message of %d bytes exceeds %d", ErrProtocol, n, maxMessage)
	}
	h.Total, h.N = int64(total), int(n)
	return h, nil
}

// readMessage reads the n-byte message after an error header, replacing
// invalid UTF-8 so it is safe to log.
func readMessage(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("%w: truncated error message: %w", ErrProtocol, err)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), nil
}

// statusText names a status for error messages.
func statusText(s byte) string {
	switch s {
	case statusOK:
		return "ok"
	case statusNotFound:
		return "not found"
	case statusRange:
		return "range out of bounds"
	case statusBadRequest:
		return "bad request"
	case statusUnavailable:
		return "unavailable"
	}
	return fmt.Sprintf("status %d", s)
}

// clipMessage makes s a valid error message: UTF-8, at most maxMessage bytes.
func clipMessage(s string) string {
	if len(s) > maxMessage {
		s = s[:maxMessage]
	}
	return strings.ToValidUTF8(s, "")
}
