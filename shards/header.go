package shards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// This file holds the strict, streaming parser of the container's JSON
// header. encoding/json's Unmarshal silently keeps the last of duplicate
// keys; a content-addressed format must not let two readers see different
// tensors in one file, so keys are checked token by token.

// parseHeader parses header as one JSON object followed only by whitespace,
// calling fn once per key with the decoder positioned at its value.
func parseHeader(header []byte, fn func(key string, dec *json.Decoder) error) error {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if err := parseObject(dec, fn); err != nil {
		return err
	}
	rest := header[dec.InputOffset():]
	if len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return errors.New("non-whitespace bytes after the JSON object")
	}
	return nil
}

// parseObject consumes one JSON object, rejecting duplicate keys.
func parseObject(dec *json.Decoder, fn func(key string, dec *json.Decoder) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key is %v, not a string", tok)
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if err := fn(key, dec); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %q", tok, want)
	}
	return nil
}

func decodeString(dec *json.Decoder, v *string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	s, ok := tok.(string)
	if !ok {
		return fmt.Errorf("got %v, want a string", tok)
	}
	*v = s
	return nil
}

// decodeUints consumes an array of at most max non-negative integers.
func decodeUints(dec *json.Decoder, max int) ([]uint64, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, err
	}
	var out []uint64
	for dec.More() {
		if len(out) == max {
			return nil, fmt.Errorf("array longer than %d", max)
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("got %v, want an integer", tok)
		}
		u, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s is not a non-negative integer", num)
		}
		out = append(out, u)
	}
	if err := expectDelim(dec, ']'); err != nil {
		return nil, err
	}
	return out, nil
}

// parseTensorInfo consumes {"dtype":…,"shape":[…],"data_offsets":[b,e]}.
// All three keys are required and no others are allowed.
func parseTensorInfo(dec *json.Decoder) (t Tensor, begin, end uint64, err error) {
	var haveDType, haveShape, haveOffsets bool
	err = parseObject(dec, func(key string, dec *json.Decoder) error {
		switch key {
		case "dtype":
			haveDType = true
			var s string
			if err := decodeString(dec, &s); err != nil {
				return fmt.Errorf("dtype: %w", err)
			}
			t.DType = DType(s)
		case "shape":
			haveShape = true
			dims, err := decodeUints(dec, MaxRank)
			if err != nil {
				return fmt.Errorf("shape: %w", err)
			}
			t.Shape = make([]int, len(dims))
			for i, d := range dims {
				if d > math.MaxInt {
					return fmt.Errorf("shape: dimension %d too large", d)
				}
				t.Shape[i] = int(d)
			}
		case "data_offsets":
			haveOffsets = true
			offs, err := decodeUints(dec, 2)
			if err != nil {
				return fmt.Errorf("data_offsets: %w", err)
			}
			if len(offs) != 2 {
				return fmt.Errorf("data_offsets has %d entries, want 2", len(offs))
			}
			begin, end = offs[0], offs[1]
		default:
			return fmt.Errorf("unknown field %q", key)
		}
		return nil
	})
	if err != nil {
		return t, 0, 0, err
	}
	if !haveDType || !haveShape || !haveOffsets {
		return t, 0, 0, errors.New("tensor entry needs dtype, shape and data_offsets")
	}
	return t, begin, end, nil
}
