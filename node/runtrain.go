package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/train"
)

// initTrainer prepares local training: its own copy of the weights, the
// participant's data, an AdamW inner optimizer whose state carries over
// from round to round (as in DiLoCo) and a learning-rate schedule over the
// whole run.
func (r *runner) initTrainer(base *baseState) error {
	if len(r.cfg.Data) == 0 {
		return errors.New("node: a training run needs data files (--train DIR)")
	}
	texts, err := readTexts(r.cfg.Data)
	if err != nil {
		return err
	}
	opt := train.Options{}
	if base.tok.VocabSize() > train.ByteVocab {
		opt.Tokenizer = base.tok
	}
	corpus, err := train.NewCorpus(texts, opt)
	if err != nil {
		return err
	}
	seqLen := min(r.spec.SeqLen, base.m.Config.SeqLen)
	batches, err := corpus.Batches(r.cfg.Seed, seqLen)
	if err != nil {
		return err
	}
	o, err := train.New(train.DefaultConfig(train.AdamW, r.spec.LR))
	if err != nil {
		return err
	}
	total := 1 << 30
	if r.spec.Rounds > 0 {
		total = r.spec.Rounds * r.spec.Steps
	}
	sched := train.Schedule{Base: r.spec.LR, Min: r.spec.LR / 10, Warmup: min(r.spec.Steps, 20, total), Total: total}
	c, _ := shards.ParseCID(base.id)
	tm, _, _, err := shards.Load(r.n.store, c, 0, base.m.Config.NLayers, true)
	if err != nil {
		return err
	}
	if r.trainer, err = train.NewTrainer(tm, o, sched, batches, r.spec.Batch, seqLen); err != nil {
		return err
	}
	r.tm = tm
	r.log.Info("node: training data", "files", len(r.cfg.Data), "tokens", corpus.Tokens())
	return nil
}

// trainRound trains Steps local steps from base and returns the update,
// compressed, stored and ready to announce.
func (r *runner) trainRound(ctx context.Context, base *baseState) (*contribution, error) {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	dst, src := train.Tensors(r.tm), train.Tensors(base.m)
	for i := range dst {
		copy(dst[i].Data, src[i].Data)
	}
	// A round that trains some blocks keeps the others frozen at the
	// base: they are put back after every step.
	round := uint64(base.round)
	trained := map[string]bool{}
	for _, t := range r.spec.trained(r.tm, round) {
		trained[t.Name] = true
	}
	var frozen []int
	for i, t := range dst {
		if !trained[t.Name] {
			frozen = append(frozen, i)
		}
	}
	var sum float64
	for i := 0; i < r.spec.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		loss, err := r.trainer.Step()
		if err != nil {
			return nil, err
		}
		for _, k := range frozen {
			copy(dst[k].Data, src[k].Data)
		}
		sum += float64(loss)
	}
	d, err := train.ComputeDelta(r.spec.view(base.m, round), r.spec.view(r.tm, round))
	if err != nil {
		return nil, err
	}
	seqLen := min(r.spec.SeqLen, base.m.Config.SeqLen)
	d.Round, d.Base = uint64(base.round), base.id
	d.Samples, d.Loss = uint64(r.spec.Steps*r.spec.Batch*seqLen), float32(sum/float64(r.spec.Steps))
	// Error feedback carries over between rounds that train the same
	// tensors.
	key := d.Tensors[0].Name + "+" + strconv.Itoa(len(d.Tensors))
	comp := r.comps[key]
	if comp == nil {
		comp = &train.Compressor{Codec: r.codec}
		r.comps[key] = comp
	}
	enc, _, err := comp.Compress(d)
	if err != nil {
		return nil, err
	}
	if r.cfg.tamper != nil {
		enc = r.cfg.tamper(d, enc)
	}
	c, err := r.n.store.Put(enc)
	if err != nil {
		return nil, err
	}
	self := r.n.ID()
	entry := entryOf(c, int64(len(enc)), self)
	dec, err := train.DecodeDelta(enc, r.spec.trained(base.m, round))
	if err != nil {
		return nil, fmt.Errorf("node: our own update does not decode: %w", err)
	}
	r.log.Info("node: trained round", "round", base.round, "loss", d.Loss, "update", c, "bytes", len(enc))
	return &contribution{
		round: base.round, base: base.id, entry: entry, own: true,
		c:   train.Contribution{Sender: self, Key: entry, Delta: dec},
		ann: announcement{Round: uint64(base.round), Base: base.id, Delta: c.String(), Size: int64(len(enc)), Samples: d.Samples, Loss: d.Loss},
	}, nil
}
