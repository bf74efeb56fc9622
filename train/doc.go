// Package train is local training: optimizers, learning-rate schedules,
// training data and the state that lets an interrupted run resume.
//
// # Contract
//
// The package does no I/O: texts arrive as []byte and saved state as
// []byte, and the caller (the node) opens files and stores checkpoints.
// Randomness is an explicit seed. A node's training texts never leave it;
// nothing here sends them anywhere.
//
//   - Optimizer applies one of SGD, momentum, Nesterov momentum, AdaGrad,
//     RMSProp, Adam and AdamW (Config, Validate, New) to a []Param — the
//     weights and gradients the model's backward pass exposes — with an
//     optional L2 penalty, decoupled weight decay and clipping by global
//     gradient norm. Each update rule, with its source, is documented on
//     the function that applies it.
//   - Schedule gives the learning rate of each step: linear warmup, then
//     cosine decay to a floor. A budget of zero steps is an error.
//   - Corpus validates and tokenizes texts (byte-level for new models,
//     a model.Tokenizer for imported ones), splits them into disjoint
//     parts by documents or by contiguous token ranges, holds out a tail
//     for evaluation, and yields seeded, shuffled (tokens, targets)
//     windows through Batches, whose Position is resumable.
//   - Optimizer.MarshalBinary and Checkpoint.MarshalBinary save the
//     optimizer state and the training position in documented
//     little-endian formats.
//
// Everything decoded from a file or a peer (Optimizer.UnmarshalBinary,
// Checkpoint.UnmarshalBinary, NewCorpus's texts) is validated with bounded
// allocation and returns an error wrapping an exported sentinel (ErrFormat,
// ErrEmpty, ErrBinary, ErrTooLarge) — never a panic. Configuration
// errors wrap ErrConfig, parameter mismatches ErrShape, bad splits ErrSplit.
//
// # Invariants
//
//   - Determinism: optimizer arithmetic is float32 in a fixed loop order
//     with every product rounded before it is added (no fused
//     multiply-add); the global norm is a float64 sum in parameter then
//     element order; bias corrections are float64 powers by repeated
//     squaring. The same inputs give bitwise the same weights on every
//     platform.
//   - Resume equivalence: N steps, then save (Optimizer.MarshalBinary,
//     Batches.Position), restore into a fresh Optimizer and Batches, then M
//     steps gives bitwise the weights of N+M uninterrupted steps.
//   - Shuffling depends only on (seed, epoch, number of windows): each
//     epoch is a Fisher–Yates permutation drawn from math/rand/v2's PCG,
//     whose output is specified, so it does not change with the Go release.
//   - Split parts are disjoint and, over all parts, cover every token once.
//   - Step reads gradients and never writes them; it changes nothing when
//     it returns an error.
//
// An Optimizer and a Batches are used by one goroutine at a time; a Corpus
// is immutable and may be shared.
//
// # Federated rounds
//
// A participant's contribution to a round is its pseudo-gradient Delta
// (θ_base − θ_local, ComputeDelta), compressed by a Compressor (FP16, or
// blockwise Int8 with error feedback: what rounding drops is carried into
// the next round) and encoded with EncodeDelta into deterministic bytes,
// so its CID is stable. DecodeDelta treats its input as hostile. Validate
// rejects contributions with the wrong shape, round or base, NaN or Inf,
// or a norm far above the round's median, naming the sender. Aggregate
// combines the rest by FedAvg (sample weights capped), coordinate-wise
// Median, TrimmedMean or CenteredClip; inputs are sorted by CID and summed
// in float64 in a fixed order, so every node computes bitwise the same
// aggregate. Outer applies it: plain SGD (lr 1 is FedAvg) or Nesterov
// (DiLoCo: lr 0.7, momentum 0.9), with state that saves and restores
// bitwise.
package train
