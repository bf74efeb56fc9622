package node

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// timeAt is a fixed instant plus d.
func timeAt(d time.Duration) time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(d) }

func TestDecodeStatus(t *testing.T) {
	good, _ := json.Marshal(Status{Peer: "12D3KooWx", Blocks: [2]int{0, 3}, Fetches: []FetchProgress{{What: "head", Done: 1, Total: 2}}})
	st, err := DecodeStatus(good)
	if err != nil || st.Peer != "12D3KooWx" || st.Blocks != [2]int{0, 3} || len(st.Fetches) != 1 {
		t.Errorf("DecodeStatus(%s) = %+v, %v", good, st, err)
	}
	for name, in := range map[string]string{
		"empty":    "",
		"not json": "<html>",
		"no peer":  `{"blocks":[0,1]}`,
		"array":    `[1,2]`,
		"too big":  `{"peer":"` + strings.Repeat("a", MaxStatusReply) + `"}`,
	} {
		if _, err := DecodeStatus([]byte(in)); !errors.Is(err, ErrStatus) {
			t.Errorf("%s: err = %v, want ErrStatus", name, err)
		}
	}
}

func FuzzDecodeStatus(f *testing.F) {
	f.Add([]byte(`{"peer":"p","peers":[{"peer":"q","blocks":[0,2]}],"run":{"id":"r","last":{"round":1}},"fetches":[{"what":"head"}]}`))
	f.Add([]byte(`{"peer":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeStatus(data)
		if err == nil && st.Peer == "" {
			t.Errorf("accepted a status without a peer id: %q", data)
		}
	})
}

func TestFetchBoard(t *testing.T) {
	var b fetchBoard
	now := timeAt(0)
	b.note("block 1", 10, 100, now)
	b.note("head", 5, 50, now)
	if got := b.list(now); len(got) != 2 || got[0].What != "block 1" || got[1] != (FetchProgress{"head", 5, 50}) {
		t.Errorf("list = %+v, want block 1 then head", got)
	}
	b.note("head", 50, 50, now) // done
	if got := b.list(now); len(got) != 1 || got[0].What != "block 1" {
		t.Errorf("after head finished: %+v, want block 1 alone", got)
	}
	if got := b.list(timeAt(fetchStale + 1)); len(got) != 0 {
		t.Errorf("after %s of silence: %+v, want none", fetchStale, got)
	}
}
