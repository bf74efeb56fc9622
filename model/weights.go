package model

// Tensor is a named, shaped view of float32 data, row-major. It is how
// weights cross package boundaries (shard files, checkpoints).
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Block holds the weights of one transformer block. Matrices are row-major
// [out][in]: y[i] = Σ_j W[i*in+j]·x[j]. A quantized block has its matrices
// in Quant and Wq..W3 nil; its norms stay float32.
type Block struct {
	AttNorm []float32 // [dim]
	Wq      []float32 // [dim][dim]
	Wk      []float32 // [kv_dim][dim]
	Wv      []float32 // [kv_dim][dim]
	Wo      []float32 // [dim][dim]
	FFNNorm []float32 // [dim]
	W1      []float32 // [hidden][dim]
	W2      []float32 // [dim][hidden]
	W3      []float32 // [hidden][dim]

	// Biases of the query, key and value projections, exactly when
	// Config.QKVBias (Qwen2); nil otherwise. They stay float32 in a
	// quantized block.
	Bq []float32 // [dim]
	Bk []float32 // [kv_dim]
	Bv []float32 // [kv_dim]

	Quant *QuantBlock // the seven matrices, quantized; nil for float32
}

// Head holds everything outside the blocks: the token embedding, the final
// norm and the classifier.
type Head struct {
	Embedding  []float32 // [vocab][dim]
	FinalNorm  []float32 // [dim]
	Classifier []float32 // [vocab][dim]; nil when Config.SharedClassifier
}

// Model is a transformer, whole or in part: Blocks[i] is nil for a block
// this process does not hold, and Head may be nil on a peer that only
// serves blocks.
type Model struct {
	Config Config
	Head   *Head
	Blocks []*Block // len == Config.NLayers
}
