package train

import "github.com/strata-mesh/strata/model"

// Param is one trainable tensor: its weights W and the gradient G of the
// loss with respect to them (len(W) == len(G)). It is model.Param, so the
// slice model.Model.Params returns is what Optimizer.Step updates.
type Param = model.Param
