package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on a sharded checkpoint's model.safetensors.index.json.
const (
	// MaxSafetensorsIndex bounds the index file (Llama 3.1 405B's is
	// about 100 KiB).
	MaxSafetensorsIndex = 16 << 20
	// maxIndexTensors bounds the tensors an index names.
	maxIndexTensors = 1 << 20
	// maxIndexFiles bounds the shard files an index names.
	maxIndexFiles = 1 << 12
	// maxShardName bounds a shard's file name.
	maxShardName = 255
)

// stIndex is a parsed model.safetensors.index.json.
type stIndex struct {
	files   []string          // the shard files, sorted, distinct
	tensors map[string]string // tensor name → shard file
}

// parseSafetensorsIndex reads a sharded checkpoint's index: a JSON
// object whose "weight_map" maps every tensor name to the shard file
// holding it ("metadata", when present, must be an object; other fields
// are ignored). Each tensor is named once; a file name is a plain name in
// the checkpoint's directory ending in ".safetensors" — no separators, no
// "..", no control characters — so opening it cannot leave the
// directory. Errors wrap ErrFormat.
func parseSafetensorsIndex(data []byte) (*stIndex, error) {
	if len(data) > MaxSafetensorsIndex {
		return nil, fmt.Errorf("%w: safetensors index is %d bytes, limit %d", ErrFormat, len(data), MaxSafetensorsIndex)
	}
	top, err := jsonObject(data, 16, "safetensors index")
	if err != nil {
		return nil, err
	}
	if md, ok := top["metadata"]; ok && string(bytes.TrimSpace(md)) != "null" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(md, &m); err != nil {
			return nil, fmt.Errorf("%w: safetensors index metadata is not an object: %v", ErrFormat, err)
		}
	}
	wm, ok := top["weight_map"]
	if !ok {
		return nil, fmt.Errorf("%w: safetensors index has no weight_map", ErrFormat)
	}
	raw, err := jsonObject(wm, maxIndexTensors, "safetensors index weight_map")
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: safetensors index weight_map names no tensors", ErrFormat)
	}
	ix := &stIndex{tensors: make(map[string]string, len(raw))}
	seen := map[string]bool{}
	for name, v := range raw {
		if len(name) > maxSafetensorsName {
			return nil, fmt.Errorf("%w: safetensors index names a tensor of %d bytes, limit %d", ErrFormat, len(name), maxSafetensorsName)
		}
		var file string
		if err := json.Unmarshal(v, &file); err != nil {
			return nil, fmt.Errorf("%w: safetensors index: the file of tensor %.80q is not a string", ErrFormat, name)
		}
		if err := checkShardName(file); err != nil {
			return nil, fmt.Errorf("%w: safetensors index: tensor %.80q: %v", ErrFormat, name, err)
		}
		ix.tensors[name] = file
		if !seen[file] {
			if len(seen) == maxIndexFiles {
				return nil, fmt.Errorf("%w: safetensors index names more than %d files", ErrFormat, maxIndexFiles)
			}
			seen[file] = true
			ix.files = append(ix.files, file)
		}
	}
	slices.Sort(ix.files)
	return ix, nil
}

// checkShardName reports why file is not a shard file name that stays in
// the checkpoint's directory.
func checkShardName(file string) error {
	switch {
	case file == "" || len(file) > maxShardName:
		return fmt.Errorf("shard file name of %d bytes; want 1..%d", len(file), maxShardName)
	case !utf8.ValidString(file):
		return fmt.Errorf("shard file name %q is not UTF-8", file)
	case strings.ContainsAny(file, `/\:`):
		return fmt.Errorf("shard file %q is not a plain name in the checkpoint's directory", file)
	case strings.HasPrefix(file, "."):
		return fmt.Errorf("shard file %q starts with a dot", file)
	case !strings.HasSuffix(file, ".safetensors"):
		return fmt.Errorf("shard file %q does not end in .safetensors", file)
	}
	for _, r := range file {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("shard file %q holds a control character", file)
		}
	}
	return nil
}

// jsonObject decodes data, which must be one JSON object of at most max
// members, into its members, refusing a key given twice (encoding/json
// would keep the last silently).
func jsonObject(data []byte, max int, what string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	bad := func(format string, a ...any) (map[string]json.RawMessage, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrFormat, what, fmt.Sprintf(format, a...))
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bad("not a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("%v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return bad("a key is not a string")
		}
		if _, dup := out[key]; dup {
			return bad("%.80q appears twice", key)
		}
		if len(out) == max {
			return bad("more than %d members", max)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return bad("member %.80q: %v", key, err)
		}
		out[key] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return bad("the object is not closed")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("data after the object")
	}
	return out, nil
}
