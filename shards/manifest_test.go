package shards

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/strata-mesh/strata/model"
)

func testConfig() model.Config {
	return model.Config{
		Dim: 64, HiddenDim: 172, NLayers: 3, NHeads: 8, NKVHeads: 4,
		VocabSize: 512, SeqLen: 512, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000,
	}
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testManifest builds a valid manifest whose shards are random bytes; the
// head is larger than one chunk so it carries a chunk list.
func testManifest() (*Manifest, [][]byte) {
	cfg := testConfig()
	const chunk = MinChunkSize
	head := randBytes(100, 3*chunk+17)
	m := &Manifest{Format: ManifestFormat, Name: "test <model> & co", Config: cfg, Head: NewRef(head, chunk), ChunkSize: chunk}
	objs := [][]byte{head}
	for i := range cfg.NLayers {
		b := randBytes(uint64(i), 1000+i)
		objs = append(objs, b)
		m.Blocks = append(m.Blocks, NewRef(b, chunk))
	}
	return m, objs
}

func TestManifestRoundTrip(t *testing.T) {
	m, _ := testManifest()
	m.Parent = Sum([]byte("parent manifest"))
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	again, err := got.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, enc) {
		t.Errorf("round trip changed bytes:\n got %s\nwant %s", again, enc)
	}
	if got.Config != m.Config || got.Name != m.Name || !got.Parent.Equals(m.Parent) || len(got.Head.Chunks) != 4 {
		t.Errorf("decoded manifest differs: %+v", got)
	}
	c1, _ := m.CID()
	c2, _ := got.CID()
	if !c1.Equals(c2) || !c1.Equals(Sum(enc)) {
		t.Errorf("CID changed across round trip: %s vs %s", c1, c2)
	}
}

func TestManifestCanonicalLayout(t *testing.T) {
	m, _ := testManifest()
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	s := string(enc)
	wantPrefix := `{"format":"strata/manifest/1","name":"test \u003cmodel\u003e \u0026 co","config":{"dim":64,`
	if !strings.HasPrefix(s, wantPrefix) {
		t.Errorf("got prefix %.120s, want %s", s, wantPrefix)
	}
	if !strings.HasSuffix(s, `],"chunk_size":4096,"parent":""}`) {
		t.Errorf("got suffix %s", s[len(s)-60:])
	}
	if rest := strings.Replace(s, `"test \u003cmodel\u003e \u0026 co"`, "", 1); strings.ContainsAny(rest, " \n\t\r") {
		t.Errorf("encoding has insignificant whitespace: %s", s)
	}
	if n := strings.Count(s, `"chunks":`); n != 1 {
		t.Errorf("got %d chunk lists, want 1 (only the multi-chunk head)", n)
	}
}

func TestVerifyChunk(t *testing.T) {
	m, objs := testManifest()
	head := objs[0]
	for i := range NumChunks(m.Head.Size, m.ChunkSize) {
		chunk := head[i*m.ChunkSize : min((i+1)*m.ChunkSize, len(head))]
		if err := m.VerifyChunk(m.Head, i, chunk); err != nil {
			t.Errorf("chunk %d: %v", i, err)
		}
	}
	bad := bytes.Clone(head[:m.ChunkSize])
	bad[7] ^= 1
	if err := m.VerifyChunk(m.Head, 0, bad); !errors.Is(err, ErrMismatch) {
		t.Errorf("flipped chunk: got %v, want ErrMismatch", err)
	}
	if err := m.VerifyChunk(m.Head, 3, head[:m.ChunkSize]); !errors.Is(err, ErrMismatch) {
		t.Errorf("wrong-length last chunk: got %v, want ErrMismatch", err)
	}
	if err := m.VerifyChunk(m.Head, 4, nil); !errors.Is(err, ErrManifest) {
		t.Errorf("out of range chunk: got %v, want ErrManifest", err)
	}
	// A single-chunk shard is verified against its CID.
	if err := m.VerifyChunk(m.Blocks[1], 0, objs[2]); err != nil {
		t.Errorf("single-chunk block: %v", err)
	}
	if err := m.VerifyChunk(m.Blocks[1], 0, objs[3][:len(objs[2])]); !errors.Is(err, ErrMismatch) {
		t.Errorf("single-chunk block with wrong bytes: got %v, want ErrMismatch", err)
	}
}

func TestDecodeManifestRejects(t *testing.T) {
	m, _ := testManifest()
	good, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	okCID := m.Blocks[0].CID.String()
	h := m.Blocks[0].CID.Hash()
	sha512, _ := mh.Sum([]byte("x"), mh.SHA2_512, -1)
	b58, err := m.Blocks[0].CID.StringOfBase('z')
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) []byte {
		if !strings.Contains(string(good), old) {
			t.Fatalf("%q not in manifest", old)
		}
		return []byte(strings.Replace(string(good), old, new, 1))
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"garbage", []byte("not json"), "invalid character"},
		{"unknown format", replace(`strata/manifest/1`, `strata/manifest/2`), "unknown format"},
		{"unknown field", replace(`"format"`, `"x":1,"format"`), "unknown field"},
		{"whitespace", replace(`,"chunk_size"`, `, "chunk_size"`), "canonical"},
		{"trailing newline", append(bytes.Clone(good), '\n'), "canonical"},
		{"bad cid", replace(okCID, "bafkreinotacid"), "unsupported CID"},
		{"empty cid", replace(okCID, ""), "empty CID"},
		{"cidv0", replace(okCID, cid.NewCidV0(h).String()), "want CIDv1"},
		{"dag-pb codec", replace(okCID, cid.NewCidV1(cid.DagProtobuf, h).String()), "want raw"},
		{"sha512", replace(okCID, cid.NewCidV1(cid.Raw, sha512).String()), "want sha2-256"},
		{"base58 cid", replace(okCID, b58), "canonical"},
		{"bad parent", replace(`"parent":""`, `"parent":"zzz"`), "parent"},
		{"missing block", replace(`{"cid":"`+okCID+`","size":1000},`, ``), "block refs for n_layers"},
		{"bad config", replace(`"dim":64`, `"dim":0`), "invalid config"},
		{"zero size", replace(`"size":1000`, `"size":0`), "size 0"},
		{"huge size", replace(`"size":1000`, `"size":99999999999999`), "out of range"},
		{"chunks missing", replace(`"chunk_size":4096`, `"chunk_size":8192`), "chunk digests"},
		{"chunk size tiny", replace(`"chunk_size":4096`, `"chunk_size":1`), "chunk_size 1 out of range"},
		{"bad digest", replace(`"chunks":["`, `"chunks":["zz`), "hex"},
		{"oversized", bytes.Repeat([]byte{' '}, MaxManifestSize+1), "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeManifest(tc.data)
			if err == nil {
				t.Fatalf("got %+v, want error containing %q", got, tc.want)
			}
			if !errors.Is(err, ErrManifest) {
				t.Errorf("got %v, want ErrManifest", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzDecodeManifest(f *testing.F) {
	m, _ := testManifest()
	good, err := m.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	m.Parent = Sum(good)
	withParent, _ := m.Encode()
	f.Add(withParent)
	m.Round = testRound()
	withRound, _ := m.Encode()
	f.Add(withRound)
	m.Weights = "q4_0"
	quantized, _ := m.Encode()
	f.Add(quantized)
	f.Add([]byte(`{"format":"strata/manifest/1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := DecodeManifest(data)
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("error %v does not wrap ErrManifest", err)
			}
			return
		}
		enc, err := got.Encode()
		if err != nil {
			t.Fatalf("accepted manifest does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatal("accepted manifest is not canonical")
		}
	})
}

func testRound() *RoundInfo {
	d1, d2 := Sum([]byte("delta 1")).String(), Sum([]byte("delta 2")).String()
	if d2 < d1 {
		d1, d2 = d2, d1
	}
	return &RoundInfo{
		Run: Sum([]byte("run")).String(), Round: 3, Rule: "trimmed-mean", Loss: 2.25,
		Outer: Sum([]byte("outer")).String(),
		Contributions: []Contribution{
			{Peer: "12D3KooWA", Delta: d1, Samples: 4096, Loss: 2.5},
			{Peer: "12D3KooWB", Delta: d2, Samples: 2048, Loss: 1.75},
		},
	}
}

func TestManifestRound(t *testing.T) {
	m, _ := testManifest()
	plain, err := m.CID()
	if err != nil {
		t.Fatal(err)
	}
	m.Round = testRound()
	if _, err := m.Encode(); !errors.Is(err, ErrManifest) {
		t.Fatalf("round record without a parent: %v, want ErrManifest", err)
	}
	m.Parent = plain
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Round == nil || got.Round.Round != 3 || len(got.Round.Contributions) != 2 || got.Round.Contributions[1].Loss != 1.75 {
		t.Fatalf("round record did not survive: %+v", got.Round)
	}
	for name, mutate := range map[string]func(r *RoundInfo){
		"round 0":       func(r *RoundInfo) { r.Round = 0 },
		"no rule":       func(r *RoundInfo) { r.Rule = "" },
		"bad run":       func(r *RoundInfo) { r.Run = "run" },
		"bad outer":     func(r *RoundInfo) { r.Outer = "x" },
		"NaN loss":      func(r *RoundInfo) { r.Loss = float32(math.NaN()) },
		"inf loss":      func(r *RoundInfo) { r.Contributions[0].Loss = float32(math.Inf(1)) },
		"none":          func(r *RoundInfo) { r.Contributions = nil },
		"unsorted":      func(r *RoundInfo) { r.Contributions[0], r.Contributions[1] = r.Contributions[1], r.Contributions[0] },
		"repeated":      func(r *RoundInfo) { r.Contributions[1].Delta = r.Contributions[0].Delta },
		"no peer":       func(r *RoundInfo) { r.Contributions[0].Peer = "" },
		"long peer":     func(r *RoundInfo) { r.Contributions[0].Peer = strings.Repeat("p", MaxPeerID+1) },
		"bad delta cid": func(r *RoundInfo) { r.Contributions[0].Delta = "QmNope" },
	} {
		m.Round = testRound()
		mutate(m.Round)
		if _, err := m.Encode(); !errors.Is(err, ErrManifest) {
			t.Errorf("%s: %v, want ErrManifest", name, err)
		}
	}
}
