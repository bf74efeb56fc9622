package shards

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ipfs/go-cid"
)

// FetchManifest returns manifest c, from the store if it is there, else
// from the first provider that delivers bytes hashing to c. The size is
// asked first and must be at most MaxManifestSize. Bytes that do not hash
// to c ban the provider; bytes that hash to c but are not a valid
// manifest are an error wrapping ErrManifest and are not stored. A valid
// manifest is stored (Put) and returned.
func (f *Fetcher) FetchManifest(ctx context.Context, c cid.Cid, providers []Provider) (*Manifest, error) {
	if f.Store == nil || f.Opener == nil {
		return nil, errors.New("shards: fetch manifest: Fetcher needs a Store and an Opener")
	}
	if err := CheckCID(c); err != nil {
		return nil, fmt.Errorf("shards: fetch manifest: %w", err)
	}
	if data, err := f.Store.Get(c); err == nil {
		m, err := DecodeManifest(data)
		if err != nil {
			return nil, fmt.Errorf("shards: manifest %s: %w", c, err)
		}
		return m, nil
	}
	var fails []string
	notFound := 0
	for _, p := range providers {
		data, err := f.fetchSmall(ctx, c, p, MaxManifestSize)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("shards: fetch manifest %s: %w", c, ctx.Err())
			}
			if errors.Is(err, ErrNotFound) {
				notFound++
			}
			fails = append(fails, fmt.Sprintf("peer %s: %v", p.Peer, err))
			continue
		}
		m, err := DecodeManifest(data)
		if err != nil {
			return nil, fmt.Errorf("shards: fetch manifest %s: object is not a manifest: %w", c, err)
		}
		if _, err := f.Store.Put(data); err != nil {
			return nil, fmt.Errorf("shards: fetch manifest %s: %w", c, err)
		}
		return m, nil
	}
	err := fmt.Errorf("%w: manifest %s from %d providers: %s", ErrUnavailable, c, len(providers), strings.Join(fails, "; "))
	if len(providers) > 0 && notFound == len(providers) {
		err = fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return nil, err
}

// fetchSmall reads all of object c (at most max bytes) from p into memory
// and verifies it against c, banning p on a mismatch.
func (f *Fetcher) fetchSmall(ctx context.Context, c cid.Cid, p Provider, max int64) ([]byte, error) {
	rw, err := f.Opener.Open(ctx, p.Peer, p.Addrs, ContentProtocol)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { rw.Close() })
	defer stop()
	defer rw.Close()
	r := &reader{rw: rw, br: bufio.NewReaderSize(rw, 64<<10)}
	r.rd, _ = rw.(readDeadliner)
	bw := bufio.NewWriterSize(rw, 4<<10)
	ask := func(off int64, n int) (header, error) {
		if _, err := bw.Write(appendRequest(nil, request{CID: c, Offset: off, Length: n})); err != nil {
			return header{}, err
		}
		if err := bw.Flush(); err != nil {
			return header{}, err
		}
		r.expect()
		h, err := readHeader(r.br, &r.hbuf)
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				f.ban(Ban{Peer: p.Peer, CID: c, Chunk: -1, Reason: err.Error()})
			}
			return header{}, err
		}
		if h.Status != statusOK {
			msg, err := readMessage(r.br, h.N)
			if err != nil {
				return header{}, err
			}
			if h.Status == statusNotFound {
				return header{}, fmt.Errorf("%w: object %s not found on peer %s", ErrNotFound, c, p.Peer)
			}
			return header{}, fmt.Errorf("peer %s answered %s for %s: %s", p.Peer, statusText(h.Status), c, msg)
		}
		if h.N != n {
			reason := fmt.Sprintf("response of %d bytes, want %d", h.N, n)
			f.ban(Ban{Peer: p.Peer, CID: c, Chunk: -1, Reason: reason})
			return header{}, fmt.Errorf("%w: %s", ErrProtocol, reason)
		}
		return h, nil
	}
	h, err := ask(0, 0)
	if err != nil {
		return nil, err
	}
	size := h.Total
	if size <= 0 || size > max {
		return nil, fmt.Errorf("%w: peer %s reports %s has %d bytes, want 1..%d", ErrManifest, p.Peer, c, size, max)
	}
	data := make([]byte, 0, size)
	for int64(len(data)) < size {
		n := int(min(size-int64(len(data)), MaxRequest))
		h, err := ask(int64(len(data)), n)
		if err != nil {
			return nil, err
		}
		if h.Total != size {
			reason := fmt.Sprintf("object size changed from %d to %d", size, h.Total)
			f.ban(Ban{Peer: p.Peer, CID: c, Chunk: -1, Reason: reason})
			return nil, fmt.Errorf("%w: %s", ErrProtocol, reason)
		}
		r.expect()
		m, err := io.ReadFull(r.br, data[len(data):len(data)+n])
		f.fetched.Add(int64(m))
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		data = data[:len(data)+n]
	}
	if err := Verify(c, data); err != nil {
		got := Sum(data)
		f.ban(Ban{Peer: p.Peer, CID: c, Chunk: 0, Reason: fmt.Sprintf("%d bytes hash to %s, want %s", size, got, c)})
		return nil, fmt.Errorf("%w: %w", errBanned, err)
	}
	return data, nil
}
