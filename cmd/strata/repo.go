package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/tensor"
)

type idCmd struct {
	Repo string `help:"Repo dir." required:"" type:"path"`
}

func (c *idCmd) Run(e *env) error {
	if err := os.MkdirAll(c.Repo, 0o755); err != nil {
		return err
	}
	key, err := mesh.LoadIdentity(filepath.Join(c.Repo, node.IdentityFile))
	if err != nil {
		return err
	}
	id, err := mesh.IDFromKey(key)
	if err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}

type importCmd struct {
	Repo       string `help:"Repo dir." required:"" type:"path"`
	Tokenizer  string `help:"llama2.c tokenizer file (e.g. tok512.bin) or Hugging Face tokenizer.json (*.json); it replaces the checkpoint's own vocabulary." type:"existingfile"`
	Name       string `help:"Model name recorded in the manifest (default: the checkpoint's file name)."`
	Quantize   string `help:"Store the blocks' matrices quantized: q8_0 (8.5 bits a weight) or q4_0 (4.5 bits); norms and the head stay float32. A different model, with its own CID." enum:",q8_0,q4_0" default:""`
	MaxContext int    `help:"Lower the model's context length (tokens) to N when the checkpoint's is longer, so serving it needs a smaller KV cache; the manifest records N. A different model, with its own CID. 0 keeps the checkpoint's context." placeholder:"N"`
	Checkpoint string `arg:"" help:"llama2.c checkpoint (.bin), GGUF file (.gguf, detected by its magic), or a Hugging Face Llama, Mistral or Qwen2 directory holding config.json, model.safetensors (or model.safetensors.index.json and its shards) and tokenizer.json." type:"path"`

	out io.Writer // where the CID goes; nil: standard output
}

// readHFDir reads a Hugging Face checkpoint directory: config.json,
// model.safetensors and, unless tokenizer (--tokenizer) replaces it,
// tokenizer.json.
func readHFDir(dir, tokenizer string) (*model.Model, *model.Tokenizer, error) {
	m, cfg, err := readHFWeights(dir)
	if err != nil || tokenizer != "" {
		return m, nil, err
	}
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w; pass a tokenizer with --tokenizer", dir, err)
	}
	tok, err := model.ReadHFTokenizer(cfg, tj)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: tokenizer.json: %w", dir, err)
	}
	if err := readChatTemplate(dir, tok); err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return m, tok, nil
}

// readChatTemplate sets tok's chat format from the chat template of dir's
// tokenizer_config.json, if the file exists and the template is of a
// family model.RenderChat knows and tok has the markers of.
func readChatTemplate(dir string, tok *model.Tokenizer) error {
	f, err := os.Open(filepath.Join(dir, "tokenizer_config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, model.MaxTokenizerJSON+1))
	if err != nil {
		return fmt.Errorf("tokenizer_config.json: %w", err)
	}
	tmpl, err := model.ChatTemplateFromConfig(data)
	if err != nil {
		return err
	}
	_ = tok.SetChat(model.DetectChat(tmpl))
	return nil
}

// readHFWeights reads config.json and model.safetensors of dir, or, when
// dir has no model.safetensors, model.safetensors.index.json and the
// shards it names.
func readHFWeights(dir string) (*model.Model, []byte, error) {
	cfgFile, err := os.Open(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer cfgFile.Close()
	cfg, err := io.ReadAll(io.LimitReader(cfgFile, 1<<20+1))
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: config.json: %w", dir, err)
	}
	wf, err := os.Open(filepath.Join(dir, "model.safetensors"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, ierr := os.Stat(filepath.Join(dir, model.HFIndexFile)); ierr == nil {
			m, err := readHFShards(dir, cfg)
			return m, cfg, err
		}
		return nil, nil, fmt.Errorf("checkpoint %s: %w, and no %s for a sharded checkpoint", dir, err, model.HFIndexFile)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer wf.Close()
	fi, err := wf.Stat()
	if err != nil {
		return nil, nil, err
	}
	m, err := model.ReadHF(cfg, wf, fi.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return m, cfg, nil
}

// readHFShards reads a sharded checkpoint of dir: the index and the
// shard files it names, which model.ReadHFSharded only asks for by plain
// names inside dir.
func readHFShards(dir string, cfg []byte) (*model.Model, error) {
	ixFile, err := os.Open(filepath.Join(dir, model.HFIndexFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	defer ixFile.Close()
	index, err := io.ReadAll(io.LimitReader(ixFile, model.MaxSafetensorsIndex+1))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, model.HFIndexFile, err)
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(name string) (io.ReaderAt, int64, error) {
		if !filepath.IsLocal(name) || filepath.Base(name) != name {
			return nil, 0, fmt.Errorf("shard file %q is not a plain name in %s", name, dir)
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, 0, err
		}
		files = append(files, f)
		fi, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		if !fi.Mode().IsRegular() {
			return nil, 0, fmt.Errorf("shard %s is not a regular file", name)
		}
		return f, fi.Size(), nil
	}
	m, err := model.ReadHFSharded(cfg, index, open)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return m, nil
}

func (c *importCmd) Run(e *env) error {
	if c.MaxContext < 0 {
		return fmt.Errorf("--max-context %d: want a number of tokens (0 keeps the checkpoint's context)", c.MaxContext)
	}
	st, err := shards.Open(c.Repo)
	if err != nil {
		return err
	}
	var (
		m   *model.Model
		tok *model.Tokenizer
	)
	if fi, err := os.Stat(c.Checkpoint); err != nil {
		return err
	} else if fi.IsDir() {
		if m, tok, err = readHFDir(c.Checkpoint, c.Tokenizer); err != nil {
			return err
		}
		return c.finish(m, tok, st)
	}
	f, err := os.Open(c.Checkpoint)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [4]byte
	n, err := f.ReadAt(magic[:], 0)
	if err != nil && err != io.EOF {
		return err
	}
	if model.IsGGUF(magic[:n]) {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		// The GGUF carries its own tokenizer; --tokenizer overrides it.
		if m, tok, err = model.ReadGGUF(f, fi.Size()); err != nil {
			return fmt.Errorf("checkpoint %s: %w", c.Checkpoint, err)
		}
	} else {
		var r io.Reader = f
		if progress := progressFunc(); progress != nil {
			if fi, err := f.Stat(); err == nil {
				r = &progressReader{r: f, total: fi.Size(), report: progress, what: "reading " + filepath.Base(c.Checkpoint)}
			}
		}
		if m, err = model.ReadLlama2C(bufio.NewReaderSize(r, 1<<20)); err != nil {
			return fmt.Errorf("checkpoint %s: %w", c.Checkpoint, err)
		}
	}
	return c.finish(m, tok, st)
}

// finish reads --tokenizer (which replaces tok), applies --max-context
// and imports m into st.
func (c *importCmd) finish(m *model.Model, tok *model.Tokenizer, st *shards.Store) error {
	m.Config = m.Config.CapContext(c.MaxContext)
	if c.Tokenizer != "" {
		data, err := os.ReadFile(c.Tokenizer)
		if err != nil {
			return err
		}
		// The file does not store its vocabulary size; the checkpoint does.
		if strings.HasSuffix(c.Tokenizer, ".json") {
			tok, err = model.ReadTokenizerJSON(data, model.TokenizerJSONOptions{VocabSize: m.Config.VocabSize, BOS: -1})
		} else {
			tok, err = model.ReadTokenizer(data, m.Config.VocabSize)
		}
		if err != nil {
			return fmt.Errorf("tokenizer %s: %w", c.Tokenizer, err)
		}
	}
	name := c.Name
	if name == "" {
		name = filepath.Base(c.Checkpoint)
	}
	if c.Quantize != "" {
		f, err := tensor.ParseQFormat(c.Quantize)
		if err != nil {
			return err
		}
		if m, err = m.Quantize(f); err != nil {
			return fmt.Errorf("import %s: quantize: %w", c.Checkpoint, err)
		}
	}
	id, _, err := shards.ImportModel(st, m, tok, name)
	if err != nil {
		return fmt.Errorf("import %s: %w", c.Checkpoint, err)
	}
	if err := st.Pin(id); err != nil { // an imported model stays until unpinned
		return err
	}
	if c.out != nil {
		fmt.Fprintln(c.out, id)
	} else {
		fmt.Println(id)
	}
	return nil
}
