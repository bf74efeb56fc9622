package shards

import (
	"fmt"
	"io"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/model"
)

// Import reads a llama2.c checkpoint, stores its head and block shards and
// its manifest in st, and returns the model id (the manifest CID). A
// checkpoint carries no tokenizer, so tok is required. Importing the same
// checkpoint and tokenizer under the same name always gives the same CID.
func Import(st *Store, ckpt io.Reader, tok *model.Tokenizer, name string) (cid.Cid, *Manifest, error) {
	m, err := model.ReadLlama2C(ckpt)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("shards: import: %w", err)
	}
	if tok == nil {
		return cid.Undef, nil, fmt.Errorf("%w: checkpoint has vocab %d; pass --tokenizer", ErrTokenizer, m.Config.VocabSize)
	}
	return ImportModel(st, m, tok, name)
}

// ImportModel stores a whole model (head and every block) and its manifest
// in st, with chunk size DefaultChunkSize and no parent. With tok nil it
// uses model.ByteTokenizer, which needs a vocabulary of at least
// model.MinTokenizerVocab (259).
func ImportModel(st *Store, m *model.Model, tok *model.Tokenizer, name string) (cid.Cid, *Manifest, error) {
	return ImportVersion(st, m, tok, name, cid.Undef)
}

// ImportVersion is ImportModel for a model trained from another: its
// manifest names parent, the version it was trained from (cid.Undef for
// none). Blocks that training left unchanged have the same CIDs as the
// parent's, so they are stored and fetched once.
func ImportVersion(st *Store, m *model.Model, tok *model.Tokenizer, name string, parent cid.Cid) (cid.Cid, *Manifest, error) {
	return ImportRound(st, m, tok, name, parent, nil)
}

// ImportRound is ImportVersion for a version a federated round made: its
// manifest carries the round record (nil for none).
func ImportRound(st *Store, m *model.Model, tok *model.Tokenizer, name string, parent cid.Cid, round *RoundInfo) (cid.Cid, *Manifest, error) {
	if m == nil {
		return cid.Undef, nil, fmt.Errorf("%w: import: nil model", ErrShard)
	}
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return cid.Undef, nil, fmt.Errorf("%w: import: %w", ErrShard, err)
	}
	if m.Head == nil || len(m.Blocks) != cfg.NLayers || m.Blocks[0] == nil {
		return cid.Undef, nil, fmt.Errorf("%w: import needs the head and all %d blocks", ErrShard, cfg.NLayers)
	}
	if tok == nil {
		if cfg.VocabSize < model.MinTokenizerVocab {
			return cid.Undef, nil, fmt.Errorf("%w: vocab %d is too small for the byte tokenizer (needs %d); pass --tokenizer",
				ErrTokenizer, cfg.VocabSize, model.MinTokenizerVocab)
		}
		tok = model.ByteTokenizer(cfg.VocabSize)
	}
	format := m.Blocks[0].Format()
	for i, b := range m.Blocks {
		if b == nil {
			return cid.Undef, nil, fmt.Errorf("%w: import needs all %d blocks; block %d is missing", ErrShard, cfg.NLayers, i)
		}
		if b.Format() != format {
			return cid.Undef, nil, fmt.Errorf("%w: import: block %d is %s, block 0 is %s; a model has one weight format",
				ErrShard, i, b.Format(), format)
		}
	}
	man := &Manifest{Format: ManifestFormat, Name: name, Config: cfg, ChunkSize: DefaultChunkSize, Parent: parent, Round: round}
	if format != 0 {
		man.Weights = format.String()
	}
	put := func(data []byte) (Ref, error) {
		if _, err := st.Put(data); err != nil {
			return Ref{}, err
		}
		return NewRef(data, man.ChunkSize), nil
	}
	head, err := EncodeHead(cfg, m.Head, tok)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("shards: import head: %w", err)
	}
	if man.Head, err = put(head); err != nil {
		return cid.Undef, nil, fmt.Errorf("shards: import head: %w", err)
	}
	for i, b := range m.Blocks {
		data, err := EncodeBlock(cfg, i, b)
		if err != nil {
			return cid.Undef, nil, fmt.Errorf("shards: import block %d: %w", i, err)
		}
		ref, err := put(data)
		if err != nil {
			return cid.Undef, nil, fmt.Errorf("shards: import block %d: %w", i, err)
		}
		man.Blocks = append(man.Blocks, ref)
	}
	enc, err := man.Encode()
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("shards: import: %w", err)
	}
	c, err := st.Put(enc)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("shards: import manifest: %w", err)
	}
	return c, man, nil
}

// LoadManifest reads and validates the manifest of model c from st.
func LoadManifest(st *Store, c cid.Cid) (*Manifest, error) {
	data, err := st.Get(c)
	if err != nil {
		return nil, fmt.Errorf("shards: load manifest: %w", err)
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("shards: load manifest %s: %w", c, err)
	}
	return m, nil
}

// Load reads from st the part of model modelCID a node serves: blocks
// [lo, hi) and, if withHead, the head and tokenizer. Every object is
// verified against its CID and the manifest's size. Blocks outside [lo, hi)
// are nil in the returned model, and so are Head and the tokenizer when
// withHead is false.
func Load(st *Store, modelCID cid.Cid, lo, hi int, withHead bool) (*model.Model, *model.Tokenizer, *Manifest, error) {
	man, err := LoadManifest(st, modelCID)
	if err != nil {
		return nil, nil, nil, err
	}
	n := man.Config.NLayers
	if lo < 0 || lo > hi || hi > n {
		return nil, nil, nil, fmt.Errorf("shards: load: block range [%d,%d) not within [0,%d)", lo, hi, n)
	}
	m := &model.Model{Config: man.Config, Blocks: make([]*model.Block, n)}
	var tok *model.Tokenizer
	if withHead {
		data, err := getRef(st, man.Head)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("shards: load head: %w", err)
		}
		if m.Head, tok, err = DecodeHead(man.Config, data); err != nil {
			return nil, nil, nil, fmt.Errorf("shards: load head %s: %w", man.Head.CID, err)
		}
	}
	for i := lo; i < hi; i++ {
		data, err := getRef(st, man.Blocks[i])
		if err != nil {
			return nil, nil, nil, fmt.Errorf("shards: load block %d: %w", i, err)
		}
		if m.Blocks[i], err = DecodeBlock(man.Config, i, data); err != nil {
			return nil, nil, nil, fmt.Errorf("shards: load block %d (%s): %w", i, man.Blocks[i].CID, err)
		}
		if f, _ := man.WeightFormat(); m.Blocks[i].Format() != f {
			return nil, nil, nil, fmt.Errorf("shards: load block %d (%s): %w: weights are %s, the manifest says %s",
				i, man.Blocks[i].CID, ErrShard, m.Blocks[i].Format(), f)
		}
	}
	return m, tok, man, nil
}

func getRef(st *Store, r Ref) ([]byte, error) {
	data, err := st.Get(r.CID)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != r.Size {
		return nil, fmt.Errorf("%w: %s has %d bytes, manifest says %d", ErrManifest, r.CID, len(data), r.Size)
	}
	return data, nil
}
