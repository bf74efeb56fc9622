package model

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// HFIndexFile is the index of a sharded Hugging Face checkpoint.
const HFIndexFile = "model.safetensors.index.json"

// HFShardName is the name Hugging Face gives shard i (from 0) of n:
// model-00001-of-00003.safetensors for i = 0, n = 3.
func HFShardName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n)
}

// ShardOpener opens a shard file of a sharded checkpoint by the name its
// index gives, returning its contents and size. The caller of
// ReadHFSharded closes what it opens, after ReadHFSharded returns.
type ShardOpener func(file string) (io.ReaderAt, int64, error)

// ReadHFSharded reads a sharded Hugging Face checkpoint: config (the
// bytes of config.json, as for ReadHF), index (the bytes of
// model.safetensors.index.json) and the shard files it names, opened by
// open. The result equals ReadHF of the same tensors in one file.
//
// The index must name every tensor exactly once, each in a file whose
// name is a plain name ending in ".safetensors" (no separator, no "..":
// open is only called with such names). Every shard's header is checked
// as ReadHF checks a file's; a tensor the index does not name, or puts in
// another shard, and a tensor the index puts in a shard that lacks it are
// refused, all before any tensor data is read. Errors wrap ErrFormat,
// ErrTruncated, ErrConfig or ErrUnsupported, or the error of open.
func ReadHFSharded(config, index []byte, open ShardOpener) (*Model, error) {
	cfg, err := hfModelConfig(config)
	if err != nil {
		return nil, err
	}
	ix, err := parseSafetensorsIndex(index)
	if err != nil {
		return nil, err
	}
	tensors := make(map[string]stRef, len(ix.tensors))
	for _, file := range ix.files {
		ra, size, err := open(file)
		if err != nil {
			return nil, fmt.Errorf("model: shard %s named by the index: %w", file, err)
		}
		f, err := parseSafetensors(ra, size)
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", file, err)
		}
		names := make([]string, 0, len(f.tensors))
		for name := range f.tensors {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			switch in, ok := ix.tensors[name]; {
			case !ok:
				return nil, fmt.Errorf("%w: shard %s holds tensor %s, which the index does not name", ErrFormat, file, name)
			case in != file:
				return nil, fmt.Errorf("%w: shard %s holds tensor %s, which the index puts in %s", ErrFormat, file, name, in)
			}
			tensors[name] = stRef{f, f.tensors[name]}
		}
	}
	if len(tensors) != len(ix.tensors) {
		names := make([]string, 0, len(ix.tensors))
		for name := range ix.tensors {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if _, ok := tensors[name]; !ok {
				return nil, fmt.Errorf("%w: the index puts tensor %s in shard %s, which does not hold it", ErrFormat, name, ix.tensors[name])
			}
		}
	}
	return readHFTensors(cfg, tensors)
}

// hfIndexOut is model.safetensors.index.json as WriteHFSharded writes it.
type hfIndexOut struct {
	Metadata struct {
		TotalSize int64 `json:"total_size"`
	} `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// WriteHFSharded exports m as WriteHF does, with the weights split into n
// shard files (named HFShardName(i, n)) of about equal size, whole
// tensors each, and their index. It needs 1 ≤ n ≤ the number of tensors.
// The output depends only on m and n; ReadHFSharded of it gives back
// bitwise the same weights as ReadHF of WriteHF's.
func WriteHFSharded(m *Model, n int) (config, index []byte, shards [][]byte, err error) {
	config, ts, err := hfExport(m)
	if err != nil {
		return nil, nil, nil, err
	}
	if n < 1 || n > len(ts) || n > maxIndexFiles {
		return nil, nil, nil, fmt.Errorf("%w: %d shards for %d tensors", ErrConfig, n, len(ts))
	}
	var total int64
	for _, t := range ts {
		total += 4 * int64(len(t.Data))
	}
	// bounds[k] is the first tensor of shard k: where the bytes before it
	// reach k/n of the total, then moved so that no shard is empty.
	bounds := make([]int, n+1)
	bounds[n] = len(ts)
	var before int64
	k := 1
	for i, t := range ts {
		for k < n && before*int64(n) >= total*int64(k) {
			bounds[k] = i
			k++
		}
		before += 4 * int64(len(t.Data))
	}
	for ; k < n; k++ {
		bounds[k] = len(ts)
	}
	for k := 1; k < n; k++ {
		bounds[k] = max(bounds[k], bounds[k-1]+1)
	}
	for k := n - 1; k > 0; k-- {
		bounds[k] = min(bounds[k], bounds[k+1]-1)
	}
	var ix hfIndexOut
	ix.Metadata.TotalSize = total
	ix.WeightMap = make(map[string]string, len(ts))
	for k := range n {
		part := ts[bounds[k]:bounds[k+1]]
		name := HFShardName(k, n)
		for _, t := range part {
			ix.WeightMap[t.Name] = name
		}
		data, err := writeSafetensors(part, map[string]string{"format": "pt"})
		if err != nil {
			return nil, nil, nil, err
		}
		shards = append(shards, data)
	}
	index, err = json.MarshalIndent(ix, "", "  ") // map keys sorted
	if err != nil {
		return nil, nil, nil, fmt.Errorf("model: safetensors index: %w", err)
	}
	return config, append(index, '\n'), shards, nil
}
