package train

import "errors"

// Sentinel errors. Every error this package returns wraps one of these, so
// callers can test with errors.Is.
var (
	// ErrConfig: an optimizer configuration or learning-rate schedule is
	// invalid (unknown kind, negative or non-finite hyperparameter, a
	// budget of zero steps).
	ErrConfig = errors.New("train: invalid config")
	// ErrShape: the parameters passed to Step do not match the optimizer
	// state (count, name or length changed, or len(W) != len(G)).
	ErrShape = errors.New("train: parameter shape mismatch")
	// ErrNonFinite: a gradient holds NaN or ±Inf; no weight was changed.
	ErrNonFinite = errors.New("train: non-finite gradient")
	// ErrFormat: saved optimizer state or a checkpoint is malformed.
	ErrFormat = errors.New("train: malformed state")
	// ErrEmpty: a training text (or a part of a split corpus) holds no data.
	ErrEmpty = errors.New("train: empty data")
	// ErrBinary: a training text is not text (NUL bytes, or too many
	// invalid UTF-8 or control bytes).
	ErrBinary = errors.New("train: binary data")
	// ErrTooLarge: a corpus exceeds MaxCorpusBytes.
	ErrTooLarge = errors.New("train: data too large")
	// ErrSplit: a corpus cannot be split or sampled as asked (bad part
	// index, too few documents or tokens, bad fraction or window length).
	ErrSplit = errors.New("train: invalid split")
)
