package tensor

import "fmt"

// MatVecQ sets out[i] to the product of row i of the quantized matrix w
// with x, for i in [0, w.Rows). len(out) must be w.Rows and len(x) w.Cols;
// out must not overlap x. It panics on a shape mismatch or an unknown
// format; w must have passed Validate (or come from Quantize).
//
// Summation order (part of the contract, like Dot's): with the values of a
// block as w_j = q_j (exact in float32) and its scale d, each full block
// gives eight lane sums
//
//	p_k = (w_k·x_k + w_{16+k}·x_{16+k}) + (w_{8+k}·x_{8+k} + w_{24+k}·x_{24+k})
//
// which are added to eight running sums a_k += d·p_k, block after block;
// the row's result is ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)), plus, for a
// partial last block of m values, d·(Σ_{j<m} w_j·x_j) summed in order. Every
// product is rounded to float32 before it is added (no FMA). The result is
// therefore bitwise the same on every machine, with or without the AVX2
// and AVX-512 kernels, however the rows are split across goroutines, and whether x goes
// through MatVecQ alone or through MatMulQ with other vectors.
//
// Matrices of at least ParallelThreshold/4 weights are split into row
// ranges across the worker pool MatVec uses. MatVecQ does not allocate.
func MatVecQ(out []float32, w *QMatrix, x []float32) {
	if w.Format.BlockBytes() == 0 || len(out) != w.Rows || len(x) != w.Cols || len(w.Data) != w.Bytes() {
		panic(fmt.Sprintf("tensor: MatVecQ shape mismatch: %s %d×%d with %d bytes, len(out)=%d len(x)=%d",
			w.Format, w.Rows, w.Cols, len(w.Data), len(out), len(x)))
	}
	if w.Rows*w.Cols >= parallelMin/4 && w.Rows >= 8 && workers() > 1 {
		j := getJob()
		j.out, j.q, j.x, j.cols, j.n, j.ostride = out, w, x, w.Cols, 0, 0
		j.split(w.Rows)
		return
	}
	matVecQ(out, w, x, 0, w.Rows)
}

// MatMulQ applies the quantized matrix w to n input vectors at once:
// out[j*w.Rows+i] is row i of w times x[j*w.Cols:(j+1)*w.Cols]. len(out)
// must be n·w.Rows and len(x) n·w.Cols; out must not overlap x. Every value
// is bitwise what MatVecQ gives for that vector alone. The rows are taken
// in cache-sized tiles, each applied to every vector before the next is
// read, so the weights are read from memory once for all n vectors. Calls
// with at least ParallelMatMulThreshold multiply-adds are split into row
// ranges across the worker pool. MatMulQ does not allocate.
func MatMulQ(out []float32, w *QMatrix, x []float32, n int) {
	if w.Format.BlockBytes() == 0 || n < 0 || len(out) != n*w.Rows || len(x) != n*w.Cols || len(w.Data) != w.Bytes() {
		panic(fmt.Sprintf("tensor: MatMulQ shape mismatch: %s %d×%d with %d bytes, n=%d len(out)=%d len(x)=%d",
			w.Format, w.Rows, w.Cols, len(w.Data), n, len(out), len(x)))
	}
	if n == 1 {
		MatVecQ(out, w, x)
		return
	}
	if w.Rows == 0 || n == 0 {
		return
	}
	if w.Rows*w.Cols*n >= parallelMulMin && w.Rows >= 8 && workers() > 1 {
		j := getJob()
		j.out, j.q, j.x, j.cols, j.n, j.ostride = out, w, x, w.Cols, n, w.Rows
		j.split(w.Rows)
		return
	}
	matMulQ(out, w, x, n, w.Rows, 0, w.Rows)
}

// qTileBytes is the size of the row tiles matMulQ applies to every vector
// while they are in cache.
const qTileBytes = 16 << 10

// matMulQ is the serial kernel over rows [lo, hi) of w for n vectors,
// writing out[j*ostride+r].
func matMulQ(out []float32, w *QMatrix, x []float32, n, ostride, lo, hi int) {
	tr := max(1, qTileBytes/max(w.Format.RowBytes(w.Cols), 1))
	cols := w.Cols
	for t := lo; t < hi; t += tr {
		te := min(t+tr, hi)
		for j := range n {
			matVecQ(out[j*ostride:j*ostride+hi], w, x[j*cols:(j+1)*cols], t, te)
		}
	}
}

// matVecQ sets out[r] for rows r in [lo, hi) of w (out is indexed by row).
func matVecQ(out []float32, w *QMatrix, x []float32, lo, hi int) {
	if hi <= lo {
		return
	}
	rb, bb := w.Format.RowBytes(w.Cols), w.Format.BlockBytes()
	nb := w.Cols / QBlockLen // full blocks a row
	data := w.Data[lo*rb : hi*rb]
	o := out[lo:hi]
	if nb > 0 {
		qRows(o, w.Format, data, x, rb, nb)
	} else {
		clear(o)
	}
	m := w.Cols - nb*QBlockLen
	if m == 0 {
		return
	}
	xt := x[nb*QBlockLen:]
	for r := range o {
		blk := data[r*rb+nb*bb : (r+1)*rb]
		d := F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
		o[r] += float32(d * tailSum(w.Format, blk[2:], xt[:m]))
	}
}

// qRowsGeneric sets out[r] to the reduced lane sums of the first nb
// blocks of row r (the row at data[r*rb:]), in MatVecQ's order.
func qRowsGeneric(out []float32, f QFormat, data []byte, x []float32, rb, nb int) {
	bb := f.BlockBytes()
	var wv [QBlockLen]float32
	for r := range out {
		row := data[r*rb:]
		var a [8]float32
		for b := range nb {
			blk := row[b*bb : (b+1)*bb]
			d := F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
			if f == Q8_0 {
				for j := range QBlockLen {
					wv[j] = float32(int8(blk[2+j]))
				}
			} else {
				for j := range QBlockLen / 2 {
					wv[j] = float32(int(blk[2+j]&0x0f) - 8)
					wv[j+QBlockLen/2] = float32(int(blk[2+j]>>4) - 8)
				}
			}
			xb := x[b*QBlockLen : (b+1)*QBlockLen]
			for k := range 8 {
				p := (float32(wv[k]*xb[k]) + float32(wv[16+k]*xb[16+k])) +
					(float32(wv[8+k]*xb[8+k]) + float32(wv[24+k]*xb[24+k]))
				a[k] += float32(d * p)
			}
		}
		out[r] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
	}
}

// tailSum is Σ_j q_j·x_j over the first len(x) (< QBlockLen) values of a
// block whose quantized values are qs, summed in order.
func tailSum(f QFormat, qs []byte, x []float32) float32 {
	var s float32
	if f == Q8_0 {
		qs = qs[:len(x)]
		for j, v := range x {
			s += float32(float32(int8(qs[j])) * v)
		}
		return s
	}
	for j, v := range x {
		var q int
		if j < QBlockLen/2 {
			q = int(qs[j]&0x0f) - 8
		} else {
			q = int(qs[j-QBlockLen/2]>>4) - 8
		}
		s += float32(float32(q) * v)
	}
	return s
}
