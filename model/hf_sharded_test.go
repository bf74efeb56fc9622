package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// shardDir is a sharded checkpoint in memory: file name → bytes.
type shardDir map[string][]byte

func (d shardDir) open(file string) (io.ReaderAt, int64, error) {
	data, ok := d[file]
	if !ok {
		return nil, 0, fmt.Errorf("open %s: no such file", file)
	}
	return bytes.NewReader(data), int64(len(data)), nil
}

// writeShards exports m as n shards and its index.
func writeShards(t *testing.T, m *Model, n int) (config, index []byte, dir shardDir) {
	t.Helper()
	config, index, shards, err := WriteHFSharded(m, n)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != n {
		t.Fatalf("WriteHFSharded(%d) wrote %d shards", n, len(shards))
	}
	dir = shardDir{}
	for i, s := range shards {
		dir[HFShardName(i, n)] = s
	}
	return config, index, dir
}

// TestHFShardedRoundTrip: a model written as 3 shards and an index reads
// back bitwise equal to the single-file import, for Llama and Qwen2 (biases)
// with and without a shared classifier.
func TestHFShardedRoundTrip(t *testing.T) {
	for _, qwen := range []bool{false, true} {
		for _, shared := range []bool{false, true} {
			cfg := ggufTestConfig
			cfg.SharedClassifier, cfg.QKVBias = shared, qwen
			m := Synth(cfg, 5)
			c1, w1, err := WriteHF(m)
			if err != nil {
				t.Fatal(err)
			}
			single, err := readHFBytes(c1, w1)
			if err != nil {
				t.Fatal(err)
			}
			config, index, dir := writeShards(t, m, 3)
			if !bytes.Equal(config, c1) {
				t.Errorf("sharded config.json differs from WriteHF's")
			}
			var ix struct {
				WeightMap map[string]string `json:"weight_map"`
			}
			if err := json.Unmarshal(index, &ix); err != nil {
				t.Fatal(err)
			}
			files := map[string]int{}
			for _, f := range ix.WeightMap {
				files[f]++
			}
			if len(files) != 3 {
				t.Errorf("the index names %d files, want 3: %v", len(files), files)
			}
			got, err := ReadHFSharded(config, index, dir.open)
			if err != nil {
				t.Fatalf("qwen=%v shared=%v: ReadHFSharded: %v", qwen, shared, err)
			}
			sameModel(t, got, single)
			sameModel(t, got, m)
			// Deterministic output.
			_, index2, dir2 := writeShards(t, m, 3)
			if !bytes.Equal(index, index2) || !bytes.Equal(dir[HFShardName(1, 3)], dir2[HFShardName(1, 3)]) {
				t.Error("WriteHFSharded is not deterministic")
			}
		}
	}
	// Every shard count from one to one tensor a shard gives non-empty shards.
	m := Synth(ggufTestConfig, 1)
	_, ts, err := hfExport(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, len(ts) - 1, len(ts)} {
		config, index, dir := writeShards(t, m, n)
		got, err := ReadHFSharded(config, index, dir.open)
		if err != nil {
			t.Fatalf("%d shards: %v", n, err)
		}
		sameModel(t, got, m)
	}
	if _, _, _, err := WriteHFSharded(m, len(ts)+1); err == nil {
		t.Errorf("WriteHFSharded with more shards than tensors succeeded")
	}
}

// reindex rewrites the weight map of index with edit.
func reindex(t *testing.T, index []byte, edit func(map[string]string)) []byte {
	t.Helper()
	var ix hfIndexOut
	if err := json.Unmarshal(index, &ix); err != nil {
		t.Fatal(err)
	}
	edit(ix.WeightMap)
	out, err := json.Marshal(ix)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHFShardedHostile: missing shards, tensors in two shards or absent
// from theirs, and file names leaving the directory are refused with an
// error naming the tensor or file, before any other file is opened.
func TestHFShardedHostile(t *testing.T) {
	m := Synth(ggufTestConfig, 2)
	config, index, dir := writeShards(t, m, 3)
	s1, s2, s3 := HFShardName(0, 3), HFShardName(1, 3), HFShardName(2, 3)
	// A tensor of shard 2, and shard 1 with that tensor added.
	var moved string
	for name, f := range mustIndex(t, index).tensors {
		if f == s2 && (moved == "" || name < moved) {
			moved = name
		}
	}
	var movedEntry stEntry
	for _, e := range entriesOf(t, dir[s2]) {
		if e.name == moved {
			movedEntry = e
		}
	}
	withMoved := buildST(append(entriesOf(t, dir[s1]), movedEntry))
	copyDir := func(edit func(shardDir)) shardDir {
		d := shardDir{}
		for k, v := range dir {
			d[k] = v
		}
		edit(d)
		return d
	}
	for _, tc := range []struct {
		name  string
		index []byte
		dir   shardDir
		want  string
	}{
		{"missing shard", index, copyDir(func(d shardDir) { delete(d, s3) }), "shard " + s3 + " named by the index"},
		{"tensor in two shards", index, copyDir(func(d shardDir) { d[s1] = withMoved }),
			"shard " + s1 + " holds tensor " + moved + ", which the index puts in " + s2},
		{"tensor moved to the wrong shard in the index", reindex(t, index, func(w map[string]string) { w[moved] = s1 }), dir,
			"shard " + s2 + " holds tensor " + moved + ", which the index puts in " + s1},
		{"tensor absent from its shard", reindex(t, index, func(w map[string]string) { w["model.extra.weight"] = s3 }), dir,
			"the index puts tensor model.extra.weight in shard " + s3 + ", which does not hold it"},
		{"tensor not in the index", reindex(t, index, func(w map[string]string) { delete(w, moved) }), dir,
			"shard " + s2 + " holds tensor " + moved + ", which the index does not name"},
		{"parent directory", reindex(t, index, func(w map[string]string) { w[moved] = "../" + s2 }), dir,
			"not a plain name in the checkpoint's directory"},
		{"absolute path", reindex(t, index, func(w map[string]string) { w[moved] = "/etc/x.safetensors" }), dir,
			"not a plain name"},
		{"backslash", reindex(t, index, func(w map[string]string) { w[moved] = `..\x.safetensors` }), dir, "not a plain name"},
		{"dot dot", reindex(t, index, func(w map[string]string) { w[moved] = ".." }), dir, "starts with a dot"},
		{"not safetensors", reindex(t, index, func(w map[string]string) { w[moved] = "config.json" }), dir,
			"does not end in .safetensors"},
		{"duplicate tensor in the index", []byte(`{"weight_map":{"a":"` + s1 + `","a":"` + s2 + `"}}`), dir,
			`"a" appears twice`},
		{"no weight map", []byte(`{"metadata":{}}`), dir, "no weight_map"},
		{"empty weight map", []byte(`{"weight_map":{}}`), dir, "names no tensors"},
		{"file not a string", []byte(`{"weight_map":{"a":1}}`), dir, "is not a string"},
		{"trailing data", append(slices.Clip(index), "{}"...), dir, "data after the object"},
		{"not an object", []byte(`[]`), dir, "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := func(file string) (io.ReaderAt, int64, error) {
				if checkShardName(file) != nil {
					t.Fatalf("opened %q", file)
				}
				return tc.dir.open(file)
			}
			_, err := ReadHFSharded(config, tc.index, open)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
			if tc.name != "missing shard" && !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
		})
	}
	// A shard's header is checked as a single file's.
	bad := copyDir(func(d shardDir) { d[s2] = d[s2][:len(d[s2])-4] })
	if _, err := ReadHFSharded(config, index, bad.open); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated shard: %v, want ErrTruncated", err)
	}
}

func mustIndex(t *testing.T, index []byte) *stIndex {
	t.Helper()
	ix, err := parseSafetensorsIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// FuzzSafetensorsIndex: the index decoder never panics, and what it
// accepts names only plain .safetensors files, sorted and distinct, each
// holding at least one tensor.
func FuzzSafetensorsIndex(f *testing.F) {
	m := Synth(ggufTestConfig, 2)
	_, index, _, err := WriteHFSharded(m, 3)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(index)
	for _, s := range []string{
		`{"metadata":{"total_size":16},"weight_map":{"a":"model-00001-of-00001.safetensors"}}`,
		`{"weight_map":{"a":"../x.safetensors"}}`,
		`{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}`,
		`{"weight_map":{"a":"x.safetensors"},"weight_map":{}}`,
		`{"weight_map":{"a":"x.safetensors"}} {}`,
		`{"weight_map":{"a":"\u0000.safetensors"}}`,
		`{"metadata":null,"weight_map":{"a":"x.safetensors","b":"x.safetensors"}}`,
		`{"weight_map":[]}`, `{`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := parseSafetensorsIndex(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		if !slices.IsSorted(ix.files) || len(slices.Compact(slices.Clone(ix.files))) != len(ix.files) {
			t.Fatalf("files %q not sorted and distinct", ix.files)
		}
		used := map[string]bool{}
		for name, file := range ix.tensors {
			if _, ok := slices.BinarySearch(ix.files, file); !ok {
				t.Fatalf("tensor %q in %q, which is not among the files", name, file)
			}
			used[file] = true
		}
		for _, file := range ix.files {
			if err := checkShardName(file); err != nil || strings.Contains(file, "..") && strings.ContainsAny(file, `/\`) {
				t.Fatalf("accepted file name %q: %v", file, err)
			}
			if !used[file] {
				t.Fatalf("file %q holds no tensor", file)
			}
		}
	})
}

// BenchmarkReadHF reads a 4-layer, dim-256 model (about 13 MB of F32)
// from one safetensors file and from 3 shards, reporting MB/s of
// weights.
func BenchmarkReadHF(b *testing.B) {
	cfg := Config{Dim: 256, HiddenDim: 688, NLayers: 4, NHeads: 8, NKVHeads: 4, VocabSize: 4096, SeqLen: 256,
		NormEps: 1e-5, RopeTheta: 10000}
	m := Synth(cfg, 1)
	config, weights, err := WriteHF(m)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("single", func(b *testing.B) {
		b.SetBytes(int64(len(weights)))
		for b.Loop() {
			if _, err := readHFBytes(config, weights); err != nil {
				b.Fatal(err)
			}
		}
	})
	_, index, parts, err := WriteHFSharded(m, 3)
	if err != nil {
		b.Fatal(err)
	}
	dir := shardDir{}
	var size int64
	for i, p := range parts {
		dir[HFShardName(i, 3)] = p
		size += int64(len(p))
	}
	b.Run("3shards", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := ReadHFSharded(config, index, dir.open); err != nil {
				b.Fatal(err)
			}
		}
	})
}
