package shards

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func sampleTensors() []Tensor {
	return []Tensor{
		{Name: "w", DType: F32, Shape: []int{2, 3}, Data: bytes.Repeat([]byte{1, 2, 3, 4}, 6)},
		{Name: "b", DType: F32, Shape: []int{3}, Data: bytes.Repeat([]byte{9, 8, 7, 6}, 3)},
		{Name: "tokenizer", DType: U8, Shape: []int{5}, Data: []byte("hello")},
		{Name: "empty", DType: U8, Shape: []int{0}, Data: []byte{}},
	}
}

func TestContainerRoundTrip(t *testing.T) {
	meta := map[string]string{"strata.kind": "block", "a": "b"}
	ts := sampleTensors()
	enc, err := Encode(meta, ts)
	if err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint64(enc)
	if hlen%8 != 0 {
		t.Errorf("header length %d not a multiple of 8", hlen)
	}
	f, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Metadata, meta) {
		t.Errorf("metadata: got %v, want %v", f.Metadata, meta)
	}
	if len(f.Tensors) != len(ts) {
		t.Fatalf("got %d tensors, want %d", len(f.Tensors), len(ts))
	}
	for i, want := range ts {
		got := f.Tensors[i]
		if got.Name != want.Name || got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("tensor %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, ok := f.Tensor("tokenizer"); !ok {
		t.Error("Tensor(tokenizer) not found")
	}
	if _, ok := f.Tensor("nope"); ok {
		t.Error("Tensor(nope) found")
	}
	// Re-encoding the decoded file gives the same bytes.
	again, err := Encode(f.Metadata, f.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, enc) {
		t.Error("re-encoding a decoded container changed its bytes")
	}
}

func TestContainerDeterministic(t *testing.T) {
	meta := map[string]string{}
	for i := range 50 {
		meta[fmt.Sprintf("k%02d", i)] = fmt.Sprint(i)
	}
	first, err := Encode(meta, sampleTensors())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		got, err := Encode(meta, sampleTensors())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, first) {
			t.Fatal("Encode is not deterministic")
		}
	}
	hdr := string(first[8 : 8+binary.LittleEndian.Uint64(first)])
	if !strings.HasPrefix(hdr, `{"__metadata__":{"k00":"0","k01":"1",`) {
		t.Errorf("header does not start with sorted metadata: %.60s", hdr)
	}
	if i, j := strings.Index(hdr, `"b":`), strings.Index(hdr, `"w":`); i < 0 || j < i {
		t.Errorf("tensor keys not sorted in %s", hdr)
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name string
		meta map[string]string
		ts   []Tensor
	}{
		{"duplicate", nil, []Tensor{{Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}, {Name: "a", DType: U8, Shape: []int{1}, Data: []byte{1}}}},
		{"short data", nil, []Tensor{{Name: "a", DType: F32, Shape: []int{2}, Data: []byte{1, 2, 3, 4}}}},
		{"bad dtype", nil, []Tensor{{Name: "a", DType: "F16", Shape: []int{1}, Data: []byte{1, 2}}}},
		{"negative dim", nil, []Tensor{{Name: "a", DType: U8, Shape: []int{-1}, Data: nil}}},
		{"empty name", nil, []Tensor{{Name: "", DType: U8, Shape: []int{1}, Data: []byte{1}}}},
		{"reserved name", nil, []Tensor{{Name: "__metadata__", DType: U8, Shape: []int{1}, Data: []byte{1}}}},
		{"empty meta key", map[string]string{"": "x"}, nil},
		{"bad utf8 value", map[string]string{"k": "\xff"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Encode(tc.meta, tc.ts)
			if !errors.Is(err, ErrFormat) {
				t.Errorf("got %v, want ErrFormat", err)
			}
		})
	}
}

// container builds a raw container from a header string and data bytes,
// with an optional lie in the header length.
func container(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func TestDecodeRejects(t *testing.T) {
	four := []byte{0, 0, 128, 63}
	lying := container(`{}`, nil)
	binary.LittleEndian.PutUint64(lying, 100)
	huge := container(`{}`, nil)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"truncated length", []byte{1, 2, 3}, "too short"},
		{"header length lies", lying, "exceeds the"},
		{"header length huge", huge, "exceeds limit"},
		{"garbage json", container(`{"a":`, nil), "header"},
		{"not an object", container(`[1,2]`, nil), "header"},
		{"trailing junk", container(`{} x`, nil), "after the JSON"},
		{"unknown dtype", container(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, four), "unknown dtype"},
		{"wrong dtype type", container(`{"a":{"dtype":1,"shape":[1],"data_offsets":[0,4]}}`, four), "dtype"},
		{"size mismatch", container(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, four), "do not hold"},
		{"offset out of range", container(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, four), "beyond"},
		{"reversed offsets", container(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, four), "do not hold"},
		{"overlap", container(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, four), "overlaps"},
		{"gap", container(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, four), "gap"},
		{"trailing data", container(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, four), "trailing"},
		{"overflow shape", container(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, four), "overflows"},
		{"overflow one dim", container(`{"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,4]}}`, four), "too large"},
		{"too big number", container(`{"a":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,4]}}`, four), "not a non-negative integer"},
		{"negative dim", container(`{"a":{"dtype":"U8","shape":[-4],"data_offsets":[0,4]}}`, four), "not a non-negative integer"},
		{"float dim", container(`{"a":{"dtype":"U8","shape":[4.0],"data_offsets":[0,4]}}`, four), "not a non-negative integer"},
		{"rank", container(`{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,4],"data_offsets":[0,4]}}`, four), "longer than"},
		{"three offsets", container(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4,4]}}`, four), "longer than"},
		{"one offset", container(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0]}}`, four), "want 2"},
		{"missing field", container(`{"a":{"dtype":"U8","shape":[4]}}`, four), "needs dtype"},
		{"unknown field", container(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"x":1}}`, four), "unknown field"},
		{"duplicate tensor", container(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, four), "duplicate key"},
		{"duplicate field", container(`{"a":{"dtype":"U8","dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, four), "duplicate key"},
		{"non-string metadata", container(`{"__metadata__":{"k":1}}`, nil), "want a string"},
		{"empty name", container(`{"":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, four), "empty tensor name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Decode(tc.data)
			if err == nil {
				t.Fatalf("got file %+v, want error containing %q", f, tc.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("got %v, want ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDecodeAcceptsForeignLayout(t *testing.T) {
	// Another writer may order header keys differently and pad with
	// newlines; that is still a valid container.
	data := container("{\"b\":{\"data_offsets\":[2,4],\"shape\":[2],\"dtype\":\"U8\"},\n \"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}\n", []byte{1, 2, 3, 4})
	f, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{f.Tensors[0].Name, f.Tensors[1].Name}; got[0] != "a" || got[1] != "b" {
		t.Errorf("tensors in order %v, want file order [a b]", got)
	}
	if !bytes.Equal(f.Tensors[1].Data, []byte{3, 4}) {
		t.Errorf("b data = %v, want [3 4]", f.Tensors[1].Data)
	}
}

func FuzzDecode(f *testing.F) {
	for _, seed := range []struct {
		meta map[string]string
		ts   []Tensor
	}{
		{nil, nil},
		{map[string]string{"strata.kind": "block"}, sampleTensors()},
	} {
		enc, err := Encode(seed.meta, seed.ts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add(container(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, []byte{1, 2, 3, 4}))
	f.Add(container(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, []byte{1, 2, 3, 4}))
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255})
	f.Add(container(`{"q":{"dtype":"Q4_0","shape":[2,33],"data_offsets":[0,72]}}`, make([]byte, 72)))
	f.Add(container(`{"q":{"dtype":"Q8_0","shape":[1,32],"data_offsets":[0,34]}}`, make([]byte, 34)))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		// Anything Decode accepts re-encodes canonically and decodes to
		// the same content.
		enc, err := Encode(file.Metadata, file.Tensors)
		if err != nil {
			t.Fatalf("decoded file does not re-encode: %v", err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("canonical encoding does not decode: %v", err)
		}
		if !reflect.DeepEqual(again.Metadata, file.Metadata) || len(again.Tensors) != len(file.Tensors) {
			t.Fatal("re-decoded file differs")
		}
		for i := range file.Tensors {
			a, b := file.Tensors[i], again.Tensors[i]
			if a.Name != b.Name || a.DType != b.DType || !reflect.DeepEqual(a.Shape, b.Shape) || !bytes.Equal(a.Data, b.Data) {
				t.Fatalf("tensor %d differs after re-encoding", i)
			}
		}
	})
}
