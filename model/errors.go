package model

import "errors"

// Sentinel errors. Every error this package returns wraps one of these (or
// ErrConfig), so callers can test with errors.Is.
var (
	// ErrFormat: the input is not a well-formed checkpoint, tokenizer or
	// tensor set (bad header, wrong names or shapes, non-finite weights).
	ErrFormat = errors.New("model: malformed input")
	// ErrTruncated: the input ended before all the data its header promises.
	ErrTruncated = errors.New("model: input truncated")
	// ErrTrailing: the input holds bytes after the last expected field.
	ErrTrailing = errors.New("model: unexpected trailing bytes")
	// ErrTokenizer: a tokenizer file is malformed.
	ErrTokenizer = errors.New("model: malformed tokenizer")
	// ErrSpan: a block span is out of range or holds a block that is not loaded.
	ErrSpan = errors.New("model: invalid block span")
)
