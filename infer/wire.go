package infer

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// ProtocolID is the libp2p stream protocol that carries activations
// between the peers of a chain.
const ProtocolID = "/strata/infer/1"

// GenerateProtocolID is the stream protocol a client uses to ask an entry
// peer for a completion.
const GenerateProtocolID = "/strata/generate/1"

// Frame types. Every frame is a 1-byte type, a 4-byte big-endian payload
// length and the payload. Control frames carry JSON; activation frames are
// binary (see encodeActs).
const (
	frameOpen    byte = 1 // JSON openMsg: build a session on this hop and the rest of the chain
	frameReturn  byte = 2 // JSON returnMsg: the last hop's stream back to the entry
	frameAck     byte = 3 // empty: the chain below this hop is ready
	frameStep    byte = 4 // activations entering this hop's blocks
	frameResult  byte = 5 // activation of the last position, leaving the last hop
	frameError   byte = 6 // JSON errorMsg, travelling towards the entry
	frameRequest byte = 7 // JSON Request from a client
	frameToken   byte = 8 // JSON tokenMsg to a client
	frameDone    byte = 9 // JSON Stats to a client
)

// Limits on what a peer may send.
const (
	maxControl = 64 << 10  // JSON control frames
	maxActs    = 256 << 20 // activation frames
	maxHops    = 1024      // hops in one chain
	maxAddrs   = 32        // addresses per hop
	maxModel   = 256       // bytes of a model id (a CID is well under)
)

// ErrProtocol is returned (wrapped) when a peer sends something that
// breaks the protocol.
var ErrProtocol = errors.New("infer: protocol violation")

// openMsg asks a hop to run blocks [Lo, Hi) of Model for a new session and
// to extend the chain through Next; the last hop returns to Entry.
type openMsg struct {
	Session string `json:"session"`
	Model   string `json:"model"`
	Lo      int    `json:"lo"`
	Hi      int    `json:"hi"`
	Next    []Hop  `json:"next,omitempty"`
	Entry   Hop    `json:"entry"`
}

func (m *openMsg) validate() error {
	switch {
	case len(m.Session) == 0 || len(m.Session) > 64:
		return fmt.Errorf("%w: session id of %d bytes", ErrProtocol, len(m.Session))
	case m.Lo < 0 || m.Hi <= m.Lo:
		return fmt.Errorf("%w: block span %d:%d", ErrProtocol, m.Lo, m.Hi)
	case len(m.Next) > maxHops:
		return fmt.Errorf("%w: chain of %d hops", ErrProtocol, len(m.Next))
	case len(m.Model) > maxModel:
		return fmt.Errorf("%w: model id of %d bytes", ErrProtocol, len(m.Model))
	case m.Entry.Peer == "":
		return fmt.Errorf("%w: no entry peer", ErrProtocol)
	}
	prev := m.Hi
	for _, h := range m.Next {
		if h.Peer == "" || h.Lo != prev || h.Hi <= h.Lo || len(h.Addrs) > maxAddrs {
			return fmt.Errorf("%w: bad hop %s %d:%d after block %d", ErrProtocol, h.Peer, h.Lo, h.Hi, prev)
		}
		prev = h.Hi
	}
	if len(m.Entry.Addrs) > maxAddrs {
		return fmt.Errorf("%w: %d entry addresses", ErrProtocol, len(m.Entry.Addrs))
	}
	return nil
}

// returnMsg opens the stream on which the last hop sends results to the entry.
type returnMsg struct {
	Session string `json:"session"`
}

// errorMsg reports a failure towards the entry; Peer names the hop that
// failed and Code classifies the failure (see CodeFailed and the others).
type errorMsg struct {
	Peer    string `json:"peer"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// writeError sends err as an error frame, blaming self unless err already
// names a peer.
func (c *conn) writeError(err error, self string) error {
	he := asHopError(err, self)
	return c.writeJSON(frameError, errorMsg{Peer: he.Peer, Code: he.Code, Message: he.Message})
}

// asHopError returns err as a *HopError, blaming peer when err does not
// already name one.
func asHopError(err error, peer string) *HopError {
	var he *HopError
	if errors.As(err, &he) {
		return he
	}
	return &HopError{Peer: peer, Code: codeOf(err), Message: err.Error()}
}

// tokenMsg is one decoded token streamed to a client.
type tokenMsg struct {
	ID    int    `json:"id"`
	Piece string `json:"piece"`
}

// conn frames one stream. Payloads returned by read are valid until the
// next read.
type conn struct {
	rw   io.ReadWriter
	r    *bufio.Reader
	w    *bufio.Writer
	buf  []byte
	rhdr [5]byte // read and write sides may run in different goroutines
	whdr [5]byte
	out  []byte
}

func newConn(rw io.ReadWriter) *conn {
	return &conn{rw: rw, r: bufio.NewReaderSize(rw, 64<<10), w: bufio.NewWriterSize(rw, 64<<10)}
}

// expect bounds the wait for the next frame when the stream supports read
// deadlines (libp2p streams do), so a peer that goes silent mid-frame or
// mid-session cannot hold a handler forever.
func (c *conn) expect(d time.Duration) {
	if dl, ok := c.rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		_ = dl.SetReadDeadline(time.Now().Add(d))
	}
}

// read returns the next frame. It never allocates more than the frame's
// type allows.
func (c *conn) read() (byte, []byte, error) {
	if _, err := io.ReadFull(c.r, c.rhdr[:]); err != nil {
		return 0, nil, err
	}
	typ, n := c.rhdr[0], binary.BigEndian.Uint32(c.rhdr[1:])
	limit := uint32(maxControl)
	if typ == frameStep || typ == frameResult {
		limit = maxActs
	}
	if typ == 0 || typ > frameDone {
		return 0, nil, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, typ)
	}
	if n > limit {
		return 0, nil, fmt.Errorf("%w: frame type %d of %d bytes exceeds limit %d", ErrProtocol, typ, n, limit)
	}
	if cap(c.buf) < int(n) {
		c.buf = make([]byte, n)
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return 0, nil, fmt.Errorf("infer: truncated frame: %w", err)
	}
	return typ, c.buf, nil
}

// write sends one frame and flushes it.
func (c *conn) write(typ byte, payload []byte) error {
	c.whdr[0] = typ
	binary.BigEndian.PutUint32(c.whdr[1:], uint32(len(payload)))
	if _, err := c.w.Write(c.whdr[:]); err != nil {
		return err
	}
	if _, err := c.w.Write(payload); err != nil {
		return err
	}
	return c.w.Flush()
}

// writeJSON sends a control frame.
func (c *conn) writeJSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.write(typ, b)
}

// readJSON reads the next frame, which must be of type want, into v. An
// error frame is turned into a *HopError.
func (c *conn) readJSON(want byte, v any) error {
	typ, payload, err := c.read()
	if err != nil {
		return err
	}
	if typ == frameError && want != frameError {
		return decodeError(payload)
	}
	if typ != want {
		return fmt.Errorf("%w: got frame type %d, want %d", ErrProtocol, typ, want)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: frame type %d: %v", ErrProtocol, typ, err)
	}
	return nil
}

// writeActs sends a step or result frame: u32 pos, u32 n, then n·dim
// little-endian float32 values.
func (c *conn) writeActs(typ byte, pos, n int, x []float32) error {
	size := 8 + 4*len(x)
	if cap(c.out) < size {
		c.out = make([]byte, size)
	}
	b := c.out[:size]
	binary.LittleEndian.PutUint32(b[0:], uint32(pos))
	binary.LittleEndian.PutUint32(b[4:], uint32(n))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[8+4*i:], math.Float32bits(v))
	}
	return c.write(typ, b)
}

// decodeActs parses an activation frame of width dim into dst (grown as
// needed) and returns pos, n and the values.
func decodeActs(payload []byte, dim, seqLen int, dst []float32) (int, int, []float32, error) {
	if len(payload) < 8 {
		return 0, 0, nil, fmt.Errorf("%w: activation frame of %d bytes", ErrProtocol, len(payload))
	}
	pos := int(binary.LittleEndian.Uint32(payload[0:]))
	n := int(binary.LittleEndian.Uint32(payload[4:]))
	if n < 1 || pos >= seqLen || n > seqLen-pos {
		return 0, 0, nil, fmt.Errorf("%w: positions %d..%d outside context of %d", ErrProtocol, pos, pos+n, seqLen)
	}
	if len(payload)-8 != 4*n*dim {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes of activations for %d positions of width %d", ErrProtocol, len(payload)-8, n, dim)
	}
	if cap(dst) < n*dim {
		dst = make([]float32, n*dim)
	}
	dst = dst[:n*dim]
	for i := range dst {
		v := math.Float32frombits(binary.LittleEndian.Uint32(payload[8+4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return 0, 0, nil, fmt.Errorf("%w: non-finite activation at position %d", ErrProtocol, pos+i/dim)
		}
		dst[i] = v
	}
	return pos, n, dst, nil
}

func decodeError(payload []byte) error {
	var m errorMsg
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Errorf("%w: undecodable error frame: %v", ErrProtocol, err)
	}
	if len(m.Message) > 4096 {
		m.Message = m.Message[:4096] + "…"
	}
	if len(m.Code) > 32 {
		m.Code = CodeFailed
	}
	return &HopError{Peer: m.Peer, Code: m.Code, Message: m.Message}
}
