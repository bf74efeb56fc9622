package train

import (
	"testing"

	"github.com/strata-mesh/strata/model"
)

// BenchmarkAggregate aggregates 4 deltas of 262,144 values (about the
// size of stories260K) with each rule; MB/s counts input delta bytes.
func BenchmarkAggregate(b *testing.B) {
	cs, _ := honest(4, 1<<18, 5)
	for _, a := range []Aggregation{{Rule: FedAvg}, {Rule: Median}, {Rule: TrimmedMean, Trim: 0.25},
		{Rule: CenteredClip, Tau: 1, Iters: 3}} {
		b.Run(a.Rule.String(), func(b *testing.B) {
			b.SetBytes(4 * 4 << 18)
			for b.Loop() {
				if _, err := Aggregate(a, cs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCompress encodes a 262,144-value delta with error feedback and
// reports the bytes sent per round against fp32 gradients every step for
// H = 100 local steps.
func BenchmarkCompress(b *testing.B) {
	shapes := []model.Tensor{{Name: "w", Shape: []int{512, 512}}}
	for _, c := range []Codec{FP16, Int8} {
		b.Run(c.String(), func(b *testing.B) {
			cs, _ := honest(1, 1<<18, 6)
			d := cs[0].Delta
			d.Tensors[0].Shape = []int{512, 512}
			comp := &Compressor{Codec: c}
			b.SetBytes(4 << 18)
			for b.Loop() {
				if _, _, err := comp.Compress(d); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(PerStepGradientBytes(shapes, 100))/float64(DeltaBytes(c, shapes)), "x-fewer-bytes-H100")
		})
	}
}
