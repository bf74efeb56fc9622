package main

import (
	"io"
	"os"
	"sync"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// bars draws one progress bar per object on a terminal; off a terminal it
// does nothing and the node's logs carry the progress instead.
type bars struct {
	mu sync.Mutex
	m  map[string]*progressbar.ProgressBar
}

// progressFunc returns a progress callback for stderr, or nil when stderr
// is not a terminal.
func progressFunc() func(what string, done, total int64) {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	b := &bars{m: map[string]*progressbar.ProgressBar{}}
	return b.update
}

// progressReader reports how much of a file has been read.
type progressReader struct {
	r      io.Reader
	done   int64
	total  int64
	what   string
	report func(what string, done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.report(p.what, min(p.done, p.total), p.total)
	return n, err
}

func (b *bars) update(what string, done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bar := b.m[what]
	if bar == nil {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100_000_000),
			progressbar.OptionOnCompletion(func() { os.Stderr.WriteString("\n") }),
		)
		b.m[what] = bar
	}
	_ = bar.Set64(done)
	if done >= total {
		delete(b.m, what)
	}
}
