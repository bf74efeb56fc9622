package train

import (
	"testing"
)

// BenchmarkStep measures one optimizer step over 260K parameters (the size
// of the reference stories260K model), reported as parameters per second.
func BenchmarkStep(b *testing.B) {
	const n = 260_000
	for _, k := range Kinds {
		b.Run(string(k), func(b *testing.B) {
			cfg := DefaultConfig(k, 1e-3)
			cfg.ClipNorm = 1
			o, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			w, g := make([]float32, n), make([]float32, n)
			for i := range g {
				g[i] = float32(i%17) * 1e-3
			}
			ps := []Param{{Name: "w", W: w, G: g}}
			b.ResetTimer()
			for b.Loop() {
				if _, err := o.Step(ps, 1e-3); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
		})
	}
}

// BenchmarkBatches measures drawing 256-token windows, in tokens per second.
func BenchmarkBatches(b *testing.B) {
	text := make([]byte, 1<<20)
	for i := range text {
		text[i] = "abcdefgh ij\n"[i%12]
	}
	c, err := NewCorpus([][]byte{text}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	bs, err := c.Batches(1, 256)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		bs.Next()
	}
	b.ReportMetric(256*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mtok/s")
}
