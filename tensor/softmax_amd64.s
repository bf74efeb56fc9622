#include "textflag.h"

// func expShiftAVX2(x *float32, n int, shift float32, c *[expConstLen]float64, tab *[64]float64)
// For i < n (a multiple of 4): x[i] = e^(x[i]-shift) computed exactly as
// expCore (same operations, same order, no FMA), 0 where x[i]-shift < -104.
// The caller guarantees x[i]-shift is not NaN and not above 89.
TEXT ·expShiftAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ c+24(FP), SI
	MOVQ tab+32(FP), DX
	VBROADCASTSS shift+16(FP), X15
	VBROADCASTSD 0(SI), Y14  // expScale
	VBROADCASTSD 8(SI), Y13  // 0.5
	VBROADCASTSD 16(SI), Y12 // sign mask
	VBROADCASTSD 24(SI), Y11 // ln2Hi64
	VBROADCASTSD 32(SI), Y10 // ln2Lo64
	VBROADCASTSD 40(SI), Y9  // -104
	VBROADCASTSD 48(SI), Y8  // 1/64
	VBROADCASTSD 56(SI), Y7  // 64
	VBROADCASTSD 64(SI), Y6  // 1.5·2^52 (int conversion magic)

loop:
	CMPQ CX, $4
	JLT  done
	VMOVUPS    (DI), X0
	VSUBPS     X15, X0, X0     // d = x - shift (float32)
	VCVTPS2PD  X0, Y0          // xd
	VCMPPD     $1, Y9, Y0, Y5  // mask: xd < -104
	VMAXPD     Y9, Y0, Y0      // clamp (no NaN here)
	VMULPD     Y14, Y0, Y1     // kf = xd*expScale
	VANDPD     Y12, Y1, Y2     // sign of kf
	VORPD      Y13, Y2, Y2     // copysign(0.5, kf)
	VADDPD     Y2, Y1, Y1      // kf + copysign(0.5, kf)
	VROUNDPD   $3, Y1, Y1      // k = trunc
	VMULPD     Y11, Y1, Y2     // k*ln2Hi
	VSUBPD     Y2, Y0, Y2      // xd - k*ln2Hi
	VMULPD     Y10, Y1, Y3     // k*ln2Lo
	VSUBPD     Y3, Y2, Y2      // r
	// p = 1 + r*(1 + r*(0.5 + r*(1/6 + r*(1/24 + r*(1/120)))))
	VBROADCASTSD 72(SI), Y3    // 1/120
	VMULPD     Y3, Y2, Y3
	VBROADCASTSD 80(SI), Y4    // 1/24
	VADDPD     Y4, Y3, Y3
	VMULPD     Y3, Y2, Y3
	VBROADCASTSD 88(SI), Y4    // 1/6
	VADDPD     Y4, Y3, Y3
	VMULPD     Y3, Y2, Y3
	VADDPD     Y13, Y3, Y3     // + 0.5
	VMULPD     Y3, Y2, Y3
	VBROADCASTSD 96(SI), Y4    // 1
	VADDPD     Y4, Y3, Y3
	VMULPD     Y3, Y2, Y3
	VADDPD     Y4, Y3, Y3      // p
	// e = floor(k/64), j = k - 64e
	VMULPD     Y8, Y1, Y2
	VROUNDPD   $1, Y2, Y2      // e
	VMULPD     Y7, Y2, Y4
	VSUBPD     Y4, Y1, Y4      // j
	VCVTTPD2DQY Y4, X4         // int32 j
	VPCMPEQD   Y1, Y1, Y1      // gather mask: all ones
	VGATHERDPD Y1, (DX)(X4*8), Y0 // tab[j]
	VMULPD     Y3, Y0, Y0      // tab[j]*p
	// scale = float64frombits((e + 1023) << 52) via the 1.5·2^52 magic
	VADDPD     Y6, Y2, Y2
	VPBROADCASTQ 104(SI), Y4   // int64 1023
	VPADDQ     Y4, Y2, Y2
	VPSLLQ     $52, Y2, Y2
	VMULPD     Y2, Y0, Y0      // tab[j]*p*scale
	VANDNPD    Y0, Y5, Y0      // zero lanes below -104
	VCVTPD2PSY Y0, X0
	VMOVUPS    X0, (DI)
	ADDQ       $16, DI
	SUBQ       $4, CX
	JMP        loop

done:
	VZEROUPPER
	RET
