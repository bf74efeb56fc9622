package tensor

import (
	"math"
	"testing"
)

func TestHalfKnownValues(t *testing.T) {
	tests := []struct {
		f    float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                             // largest finite half
		{65520, 0x7c00},                             // halfway to 2^16 rounds to even: Inf
		{65519, 0x7bff},                             // below the halfway point
		{float32(math.Inf(1)), 0x7c00},              // +Inf
		{float32(math.Inf(-1)), 0xfc00},             // -Inf
		{1e10, 0x7c00},                              // overflow
		{6.103515625e-05, 0x0400},                   // smallest normal 2^-14
		{5.960464477539063e-08, 0x0001},             // smallest subnormal 2^-24
		{2.9802322387695312e-08, 0x0000},            // 2^-25: tie between 0 and 2^-24, to even 0
		{2.9802326e-08, 0x0001},                     // just above the tie
		{8.940696716308594e-08, 0x0002},             // 1.5·2^-24: tie between 1 and 2 units, to even 2
		{1.1920928955078125e-07, 0x0002},            // 2^-23
		{6.097555160522461e-05, 0x03ff},             // largest subnormal
		{6.102e-05, 0x0400},                         // rounds up into the smallest normal
		{1 + 1.0/2048, 0x3c00},                      // tie between 1 and 1+2^-10: to even 1
		{1 + 3.0/2048, 0x3c02},                      // tie between 1+2^-10 and 1+2^-9: to even
		{1 + 1.0/2048 + 1.0/65536, 0x3c01},          // above the tie
		{0.333251953125, 0x3555},                    // 1/3 rounded to half
		{float32(1.0 / 3), 0x3555},                  // 1/3
		{-0.0999755859375, 0xae66},                  // -0.1 in half
		{1e-9, 0x0000},                              // underflow
		{-1e-9, 0x8000},                             // underflow keeps the sign
		{2049, 0x6800},                              // 2049 ties to 2048 (even)
		{2051, 0x6802},                              // 2051 ties to 2052 (even)
		{float32(math.SmallestNonzeroFloat32), 0x0}, // float32 subnormal
	}
	for _, tc := range tests {
		if got := F32ToF16(tc.f); got != tc.want {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
	if h := F32ToF16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("F32ToF16(NaN) = %#04x, want a NaN", h)
	}
	if f := F16ToF32(0x7e00); !math.IsNaN(float64(f)) {
		t.Errorf("F16ToF32(0x7e00) = %g, want NaN", f)
	}
	for _, tc := range []struct {
		h    uint16
		want float32
	}{{0x3c00, 1}, {0x0001, 5.960464477539063e-08}, {0x03ff, 6.097555160522461e-05}, {0x7bff, 65504},
		{0xfc00, float32(math.Inf(-1))}, {0xc000, -2}, {0x3555, 0.333251953125}} {
		if got := F16ToF32(tc.h); got != tc.want {
			t.Errorf("F16ToF32(%#04x) = %g, want %g", tc.h, got, tc.want)
		}
	}
}

// TestHalfRoundTrip: every non-NaN half converts to float32 and back to
// the same bits, and the conversion from float32 is the nearest half.
func TestHalfRoundTrip(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		if got := F32ToF16(f); got != uint16(h) {
			t.Fatalf("half %#04x → %g → %#04x", h, f, got)
		}
	}
	// Nearest: for values between consecutive positive halves, the result
	// is one of the two neighbours and no farther than the other.
	for h := uint16(0); h < 0x7bff; h += 7 {
		lo, hi := F16ToF32(h), F16ToF32(h+1)
		for _, frac := range []float64{0.1, 0.49, 0.51, 0.9} {
			x := float32(float64(lo) + frac*float64(hi-lo))
			got := F16ToF32(F32ToF16(x))
			want := lo
			if frac > 0.5 {
				want = hi
			}
			if got != want {
				t.Fatalf("%g between %g and %g converted to %g, want %g", x, lo, hi, got, want)
			}
		}
	}
}
