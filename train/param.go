package train

// Param is one trainable tensor: its weights W and the gradient G of the
// loss with respect to them (len(W) == len(G)). It has the shape of
// model.Param (the backward pass's view of a model's weights), so the
// slice model.Model.Params returns is what Optimizer.Step updates.
type Param struct {
	Name string
	W, G []float32
}
