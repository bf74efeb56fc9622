package shards

import (
	"bufio"
	"errors"
	"io"
	"os"
	"time"

	"github.com/ipfs/go-cid"
)

// Server-side timeouts, applied when the stream supports deadlines.
const (
	firstRequestTimeout = 30 * time.Second // from stream open to the first request
	idleTimeout         = 2 * time.Minute  // between requests
	writeTimeout        = time.Minute      // to send one response
	// serveBuffer is the write buffer per stream: a response header and a
	// whole default-size chunk fit in it, so each goes out in one stream
	// write. Writes on a libp2p (yamux) stream wait for the connection's
	// send loop, so with 256 KiB writes the server idled between them and
	// a fetch ran at half the raw stream speed; at this size it matches it.
	serveBuffer = headerSize + DefaultChunkSize
)

type readDeadliner interface{ SetReadDeadline(time.Time) error }
type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// ServeContent serves ContentProtocol requests on one stream from the peer
// remote until the peer closes it, sends a malformed request, goes idle or
// the stream fails. Requests are answered in order; a client may pipeline
// them. Only objects that verify against their CID are served (see
// ReadAt); each is hashed once per version of its file, then ranges are
// read straight from the file into a bounded write buffer, so a slow
// reader holds back the server instead of growing its memory.
func (s *Store) ServeContent(rw io.ReadWriteCloser, remote string) {
	defer rw.Close()
	br := bufio.NewReaderSize(rw, 4<<10)
	bw := bufio.NewWriterSize(rw, serveBuffer)
	rd, _ := rw.(readDeadliner)
	wd, _ := rw.(writeDeadliner)
	var (
		cur  cid.Cid
		f    *os.File
		size int64
		rbuf [requestSize]byte
		hbuf []byte
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	fail := func(st byte, total int64, msg string) bool {
		msg = clipMessage(msg)
		hbuf = appendHeader(hbuf[:0], header{Status: st, Total: total, N: len(msg)})
		if _, err := bw.Write(hbuf); err != nil {
			return false
		}
		_, err := bw.WriteString(msg)
		return err == nil
	}
	for first := true; ; first = false {
		if rd != nil {
			d := idleTimeout
			if first {
				d = firstRequestTimeout
			}
			_ = rd.SetReadDeadline(time.Now().Add(d))
		}
		req, err := readRequest(br, &rbuf)
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				s.log.Debug("shards: bad content request", "peer", remote, "err", err)
				if fail(statusBadRequest, 0, err.Error()) {
					_ = bw.Flush()
				}
			}
			return
		}
		if wd != nil {
			_ = wd.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		if f == nil || !cur.Equals(req.CID) {
			if f != nil {
				f.Close()
				f = nil
			}
			f, size, err = s.openVerified(req.CID)
			cur = req.CID
			if err != nil {
				f = nil
				st := statusUnavailable
				if errors.Is(err, ErrNotFound) {
					st = statusNotFound
				} else {
					s.log.Warn("shards: cannot serve object", "cid", req.CID, "peer", remote, "err", err)
				}
				if !fail(st, 0, "object "+req.CID.String()+" "+statusText(st)) {
					return
				}
				if br.Buffered() == 0 && bw.Flush() != nil {
					return
				}
				continue
			}
		}
		if req.Offset > size || int64(req.Length) > size-req.Offset {
			if !fail(statusRange, size, "range beyond object") {
				return
			}
		} else {
			hbuf = appendHeader(hbuf[:0], header{Status: statusOK, Total: size, N: req.Length})
			if _, err := bw.Write(hbuf); err != nil {
				return
			}
			if req.Length > 0 {
				n, err := io.Copy(bw, io.NewSectionReader(f, req.Offset, int64(req.Length)))
				if err != nil || n != int64(req.Length) {
					// The header promised bytes we cannot send: end the
					// stream so the client sees a truncated response.
					s.log.Warn("shards: serving range failed", "cid", req.CID, "peer", remote, "sent", n, "err", err)
					return
				}
			}
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}
