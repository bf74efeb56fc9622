package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"testing"
	"testing/iotest"
)

// tinyConfig is small enough to try every prefix of its checkpoint.
func tinyConfig(shared bool) Config {
	return Config{Dim: 8, HiddenDim: 12, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: 6, SeqLen: 4,
		SharedClassifier: shared, NormEps: 1e-5, RopeTheta: 10000}
}

func writeCheckpoint(t testing.TB, m *Model) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteLlama2C(&buf, m); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != Llama2CSize(m.Config) {
		t.Fatalf("WriteLlama2C wrote %d bytes, Llama2CSize says %d", buf.Len(), Llama2CSize(m.Config))
	}
	return buf.Bytes()
}

// onlyReader hides io.Seeker so ReadLlama2C takes the streaming path.
type onlyReader struct{ io.Reader }

func equalModels(t *testing.T, a, b *Model) {
	t.Helper()
	if a.Config != b.Config {
		t.Fatalf("config %+v, want %+v", b.Config, a.Config)
	}
	eq := func(what string, x, y []float32) {
		if len(x) != len(y) {
			t.Fatalf("%s: %d values, want %d", what, len(y), len(x))
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				t.Fatalf("%s[%d] = %v, want %v", what, i, y[i], x[i])
			}
		}
	}
	for l := range a.Blocks {
		ta, tb := a.Blocks[l].Tensors(a.Config), b.Blocks[l].Tensors(b.Config)
		for i := range ta {
			eq(ta[i].Name, ta[i].Data, tb[i].Data)
		}
	}
	ha, hb := a.Head.Tensors(a.Config), b.Head.Tensors(b.Config)
	for i := range ha {
		eq(ha[i].Name, ha[i].Data, hb[i].Data)
	}
}

func TestLlama2CRoundTrip(t *testing.T) {
	for _, shared := range []bool{true, false} {
		m := Synth(tinyConfig(shared), 7)
		data := writeCheckpoint(t, m)
		for name, r := range map[string]io.Reader{
			"seeker": bytes.NewReader(data),
			"stream": onlyReader{bytes.NewReader(data)},
			"1byte":  iotest.OneByteReader(bytes.NewReader(data)),
		} {
			got, err := ReadLlama2C(r)
			if err != nil {
				t.Fatalf("shared=%v %s: %v", shared, name, err)
			}
			equalModels(t, m, got)
		}
	}
}

func TestLlama2CStoriesRoundTrip(t *testing.T) {
	m, _ := loadStories(t)
	if got := m.ParamCount(); got != 260032 {
		t.Errorf("ParamCount = %d, want 260032", got)
	}
	back, err := ReadLlama2C(bytes.NewReader(writeCheckpoint(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	equalModels(t, m, back)
}

// TestLlama2CEveryPrefix: every strict prefix of a checkpoint is an
// ErrTruncated error (never a panic), on both the seek and stream paths,
// and any extra byte is ErrTrailing.
func TestLlama2CEveryPrefix(t *testing.T) {
	for _, shared := range []bool{true, false} {
		data := writeCheckpoint(t, Synth(tinyConfig(shared), 1))
		for n := range len(data) {
			for _, r := range []io.Reader{bytes.NewReader(data[:n]), onlyReader{bytes.NewReader(data[:n])}} {
				_, err := ReadLlama2C(r)
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("shared=%v prefix %d/%d: err = %v, want ErrTruncated", shared, n, len(data), err)
				}
			}
		}
		long := append(append([]byte(nil), data...), 0)
		for _, r := range []io.Reader{bytes.NewReader(long), onlyReader{bytes.NewReader(long)}} {
			if _, err := ReadLlama2C(r); !errors.Is(err, ErrTrailing) {
				t.Errorf("shared=%v with a trailing byte: err = %v, want ErrTrailing", shared, err)
			}
		}
	}
}

func TestLlama2CTruncationNamesArray(t *testing.T) {
	cfg := tinyConfig(true)
	data := writeCheckpoint(t, Synth(cfg, 1))
	// Cut inside wk of layer 1: header, embedding, rms_att×2, wq×2, wk of layer 0, 3 floats.
	d, kv := cfg.Dim, cfg.KVDim()
	off := 28 + 4*(cfg.VocabSize*d+2*d+2*d*d+kv*d+3)
	_, err := ReadLlama2C(onlyReader{bytes.NewReader(data[:off])})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("wk of layer 1")) {
		t.Errorf("err = %v, want it to name wk of layer 1", err)
	}
}

func header(v ...int32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, uint32(x))
	}
	return b
}

func TestLlama2CBadHeaders(t *testing.T) {
	cases := map[string]struct {
		data []byte
		want error
	}{
		"empty":              {nil, ErrTruncated},
		"short header":       {header(64, 172, 5)[:10], ErrTruncated},
		"zero dim":           {header(0, 172, 5, 8, 4, 512, 512), ErrConfig},
		"negative dim":       {header(-64, 172, 5, 8, 4, 512, 512), ErrConfig},
		"huge dim":           {header(1<<30, 172, 5, 8, 4, 512, 512), ErrConfig},
		"negative hidden":    {header(64, -1, 5, 8, 4, 512, 512), ErrConfig},
		"huge layers":        {header(64, 172, 1<<20, 8, 4, 512, 512), ErrConfig},
		"heads not dividing": {header(64, 172, 5, 7, 7, 512, 512), ErrConfig},
		"kv > heads":         {header(64, 172, 5, 8, 16, 512, 512), ErrConfig},
		"kv not dividing":    {header(64, 172, 5, 8, 3, 512, 512), ErrConfig},
		"odd head size":      {header(24, 172, 5, 8, 4, 512, 512), ErrConfig},
		"zero vocab":         {header(64, 172, 5, 8, 4, 0, 512), ErrConfig},
		"min int vocab":      {header(64, 172, 5, 8, 4, math.MinInt32, 512), ErrConfig},
		"huge seq":           {header(64, 172, 5, 8, 4, 512, math.MaxInt32), ErrConfig},
		"negative seq":       {header(64, 172, 5, 8, 4, 512, -1), ErrConfig},
		"valid, no data":     {header(64, 172, 5, 8, 4, 512, 512), ErrTruncated},
		"max dims, no data":  {header(MaxDim, MaxHidden, MaxLayers, MaxHeads, MaxHeads, -MaxVocab, MaxSeqLen), ErrTruncated},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for _, r := range []io.Reader{bytes.NewReader(c.data), onlyReader{bytes.NewReader(c.data)}} {
				if _, err := ReadLlama2C(r); !errors.Is(err, c.want) {
					t.Errorf("err = %v, want %v", err, c.want)
				}
			}
		})
	}
}

func TestLlama2CNonFinite(t *testing.T) {
	data := writeCheckpoint(t, Synth(tinyConfig(true), 1))
	bad := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(bad[28+4*10:], math.Float32bits(float32(math.NaN())))
	if _, err := ReadLlama2C(bytes.NewReader(bad)); !errors.Is(err, ErrFormat) {
		t.Errorf("NaN weight: err = %v, want ErrFormat", err)
	}
}

func FuzzReadLlama2C(f *testing.F) {
	f.Add(writeCheckpoint(f, Synth(tinyConfig(true), 1)))
	f.Add(writeCheckpoint(f, Synth(tinyConfig(false), 2)))
	f.Add(header(8, 12, 2, 4, 2, 6, 4))
	f.Add(header(MaxDim, MaxHidden, MaxLayers, MaxHeads, MaxHeads, -MaxVocab, MaxSeqLen))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range []io.Reader{bytes.NewReader(data), onlyReader{bytes.NewReader(data)}} {
			m, err := ReadLlama2C(r)
			if err != nil {
				if m != nil {
					t.Fatal("model returned with an error")
				}
				continue
			}
			if int64(len(data)) != Llama2CSize(m.Config) {
				t.Fatalf("accepted %d bytes for a config of size %d", len(data), Llama2CSize(m.Config))
			}
			// A model that parses must run (when its KV cache is small
			// enough for a fuzzing worker).
			if m.StateBytes(0, m.Config.NLayers) > 1<<24 {
				continue
			}
			s := m.NewState(0, m.Config.NLayers)
			logits := make([]float32, m.Config.VocabSize)
			m.Step(s, 0, 0, logits)
		}
	})
}
