// Package model is the transformer: configuration, weights, the forward
// pass with a key/value cache, llama2.c checkpoint and tokenizer import,
// synthetic models, and sampling.
//
// # Contract
//
// The package is pure. It reads from an io.Reader or a []byte and never
// opens files, sockets or clocks; randomness is an explicit seed.
//
// Everything read from a file or a peer (ReadLlama2C, ReadTokenizer,
// BlockFromTensors, HeadFromTensors) is validated with bounded allocation
// and returns an error wrapping an exported sentinel (ErrConfig, ErrFormat,
// ErrTruncated, ErrTrailing, ErrTokenizer) — never a panic. The compute
// API (Forward, Embed, Logits, Step, NewState, NewBatch, Batch.Forward,
// Batch.ForwardSeq, Sampler.Sample) panics on misuse that only a
// programming error can cause: wrong slice lengths, a position beyond SeqLen, a token outside the vocabulary, an unloaded
// block. Callers validate remote input (tokens, positions, spans with
// CheckSpan) before calling it.
//
// # Invariants
//
//   - Weights are immutable once a Model is built and may be shared by any
//     number of goroutines and States. A State (KV cache and scratch) belongs
//     to one session and is used by one goroutine at a time.
//   - Forward, Step, Sample, Batch.Forward and Batch.ForwardSeq do not
//     allocate. A Batch (scratch for several steps) is used by one goroutine
//     at a time, like a State.
//   - The forward pass is llama2.c run.c's: RMSNorm (eps from Config),
//     grouped-query attention (query head h reads kv head h/(NHeads/NKVHeads))
//     with scores scaled by 1/sqrt(head_size), RoPE on adjacent pairs with
//     freq = 1/theta^((i mod head_size)/head_size), SwiGLU FFN, residual adds,
//     final RMSNorm and classifier. Logits agree with run.c to about 1e-5.
//     Two Llama-family variants extend it: Config.QKVBias adds biases to the
//     query, key and value projections before RoPE (Qwen2), and
//     Config.RopeScaling rescales the RoPE frequencies (linear, Llama 3;
//     Config.RoPEFreqs). Both are left out of the config's JSON when unset,
//     so models without them keep their manifests and CIDs.
//   - Results are deterministic: matrix–vector products use the fixed
//     summation order of package tensor, so the same weights and inputs give
//     bitwise the same activations on every machine, and running a model
//     split into spans [0,a), [a,b), … on separate States gives bitwise the
//     same logits as running it whole. Batching never changes a result
//     either: Batch.Forward (one position of each of several sessions) and
//     Batch.ForwardSeq (several positions of one session) give each step
//     bitwise the activations and KV-cache entries Forward gives it alone.
//   - Tokenizer.Encode/Decode and Sampler reproduce run.c's encode(),
//     decode() and sample() (same token ids for the same seed). A
//     byte-level BPE Tokenizer (NewBPE, ReadBPE, GGUF "gpt2" vocabularies,
//     tokenizer.json) encodes as Hugging Face's tokenizers does instead:
//     special tokens matched verbatim, the GPT-2, Llama 3 or Qwen2
//     pre-tokenizer (written by hand: Go's regexp has no lookahead), merges
//     by rank; Decode of its tokens concatenates to the encoded text.
//     Tokenizer.IsStop, BOS and Print tell a generator when to stop, what to
//     put first and what to show, for either kind.
//   - Tensor names and shapes (Block.Tensors, Head.Tensors) are part of the
//     on-disk shard format.
//
// # Imports
//
// ReadLlama2C reads llama2.c checkpoints and ReadTokenizer their tokenizer
// files; ReadGGUF reads llama- and qwen2-architecture GGUF files (F32 and
// F16 tensors, rope scaling from metadata or Llama 3's rope_freqs.weight)
// with the SentencePiece or byte-level BPE vocabulary in their metadata,
// giving bitwise the weights of the llama2.c export of the same model;
// ReadHF reads Hugging Face LlamaForCausalLM, MistralForCausalLM and
// Qwen2ForCausalLM checkpoints (config.json and safetensors in F32, F16 or
// BF16), undoing the Q/K row permutation of their rotary layout, and
// ReadHFSharded those split into shards by model.safetensors.index.json;
// ReadTokenizerJSON / ReadHFTokenizer their tokenizer.json (byte-level
// BPE, or SentencePiece-style BPE with byte fallback, which becomes a
// llama2.c Tokenizer). WriteGGUF, WriteHF and WriteHFSharded export, so the same model
// round-trips through every format to the same weights. All readers
// bound every count and length by the bytes present before allocating and
// answer bad input with errors wrapping ErrFormat, ErrTruncated,
// ErrConfig, ErrTokenizer or ErrUnsupported. A head shard names its
// tokenizer's format (Tokenizer.Format, ReadTokenizerFormat).
//
// # Quantized blocks
//
// A Block may hold its seven matrices quantized (Block.Quant, formats
// tensor.Q8_0 and tensor.Q4_0; Model.Quantize, Block.Quantize) with its
// norms in float32; the head always stays float32. Forward, Step and Batch
// run such blocks with tensor.MatVecQ and tensor.MatMulQ, and every
// invariant above (determinism, spans, batching) holds for them too; their
// results differ from the float32 model's by the quantization error.
// BlockFromQuantTensors validates quantized matrices from files and peers.
// Training needs float32 weights: NewTape panics with ErrQuantized on a
// quantized block, and CheckTrainable reports it as an error first. The
// q/k/v biases of a QKVBias model are trained like the other weights
// (Params lists them after each block's matrices).
//
// # Training
//
// A Tape records the activations of one training forward over a sequence
// (ForwardSpan for a block span, LossAndGrad and Loss for the whole model
// with mean cross-entropy); backward passes add gradients into a Grads,
// which has the weights' shapes and is zeroed by the caller. A nil block or
// head in Grads is frozen: gradients flow through it but are not stored.
// Params pairs every trained tensor with its gradient in a fixed order for
// optimizers. ForwardSpan is bitwise the same function as Forward, so what
// is trained is exactly what is served; BackwardSpan composes across spans,
// so block ranges can be trained on different peers. Gradients are checked
// against float64 central finite differences (gradcheck_test.go).
package model
