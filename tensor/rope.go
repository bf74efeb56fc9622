package tensor

import (
	"fmt"
	"math"
)

// RoPEFreqs fills freq (length headSize/2) with the rotation frequency of
// each pair of a head: freq[p] = 1 / theta^((2p)/headSize), computed in
// float32 as llama2.c (1.0f / powf(theta, head_dim / (float)head_size)).
func RoPEFreqs(freq []float32, headSize int, theta float32) {
	mustLen("RoPEFreqs", headSize/2, freq)
	for p := range freq {
		e := float32(2*p) / float32(headSize)
		freq[p] = 1 / float32(math.Pow(float64(theta), float64(e)))
	}
}

// RoPEAngles fills cos and sin (each len(freq)) with the rotation of each
// pair at position pos: angle = float32(pos)·freq[p].
func RoPEAngles(cos, sin, freq []float32, pos int) {
	mustLen("RoPEAngles", len(freq), cos, sin)
	for p, f := range freq {
		a := float32(pos) * f
		cos[p] = float32(math.Cos(float64(a)))
		sin[p] = float32(math.Sin(float64(a)))
	}
}

// RoPE rotates vec in place: vec is a sequence of heads of 2·len(cos)
// elements, and pair (i, i+1) of each head, p = (i mod headSize)/2, becomes
// (v0·cos[p] − v1·sin[p], v0·sin[p] + v1·cos[p]). len(vec) must be a
// multiple of the head size.
func RoPE(vec, cos, sin []float32) {
	mustLen("RoPE", len(cos), sin)
	hs := 2 * len(cos)
	if hs == 0 || len(vec)%hs != 0 {
		panic(fmt.Sprintf("tensor: RoPE vector length %d not a multiple of head size %d", len(vec), hs))
	}
	for h := 0; h < len(vec); h += hs {
		head := vec[h : h+hs : h+hs]
		for p := range cos {
			fcr, fci := cos[p], sin[p]
			v0, v1 := head[2*p], head[2*p+1]
			head[2*p] = float32(v0*fcr) - float32(v1*fci)
			head[2*p+1] = float32(v0*fci) + float32(v1*fcr)
		}
	}
}
