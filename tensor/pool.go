package tensor

import (
	"runtime"
	"sync"
)

// ParallelThreshold is the matrix size (rows*cols weights) from which MatVec
// splits rows across the worker pool. Below it, handing work to another
// goroutine costs more than it saves. Measured with BenchmarkMatVec against
// BenchmarkMatVecSerial on a busy 2-core machine: 1024×1024 (cache-resident)
// ran slower split (56–68µs vs 51–55µs); 2048×2048 went either way between
// runs (340–353µs vs 283–436µs); 4096×4096, memory-bound, ran clearly faster
// (1.40–1.65ms vs 2.22–2.75ms). A 64×64 or 172×64 matrix always stays on
// the calling goroutine.
const ParallelThreshold = 1 << 23

// ParallelMatMulThreshold is the work (rows*cols*n multiply-adds) from
// which MatMul splits rows across the worker pool. A batched product does n
// times the arithmetic of a MatVec for the same weight traffic, so it pays
// to split much smaller matrices. Measured with BenchmarkMatMul against
// BenchmarkMatMulSerial on a busy 2-core machine (AVX2 kernel): 288×288 at
// n=16 (1.3M) took 49µs split vs 55µs serial, 768×288 at n=8 (1.8M) 54µs
// vs 80µs, 2048×2048 at n=2 (8.4M) 456µs vs 887µs; below 1M (288×288 at
// n=8, 28µs) the hand-off is not worth it.
const ParallelMatMulThreshold = 1 << 20

// parallelMin and parallelMulMin are ParallelThreshold and
// ParallelMatMulThreshold; tests lower them to exercise the pool on small
// matrices.
var (
	parallelMin    = ParallelThreshold
	parallelMulMin = ParallelMatMulThreshold
)

// job is one MatVec or MatMul split across the pool. Jobs are recycled through the
// freeJobs list so a parallel MatVec does not allocate (a sync.Pool would
// drop them at each GC).
type job struct {
	out, w, x []float32
	q         *QMatrix // MatVecQ, MatMulQ: the matrix (w is nil)
	cols      int
	n         int // vectors; 0 for a MatVec
	ostride   int // MatMul: distance in out between vectors
	chunk     int // rows per part
	wg        sync.WaitGroup
}

// part is a row range of a job handed to a worker.
type part struct {
	j      *job
	lo, hi int
}

var (
	poolOnce sync.Once
	poolN    int
	parts    chan part
	freeJobs = make(chan *job, 64)
)

func getJob() *job {
	select {
	case j := <-freeJobs:
		return j
	default:
		return new(job)
	}
}

func putJob(j *job) {
	j.out, j.w, j.x, j.q = nil, nil, nil, nil
	select {
	case freeJobs <- j:
	default:
	}
}

// workers returns the number of goroutines a parallel MatVec uses (the
// caller plus the pool), starting the pool on first use. The pool is sized
// from GOMAXPROCS at that moment and lives for the rest of the process; its
// goroutines block on a channel receive when idle.
func workers() int {
	poolOnce.Do(func() {
		poolN = runtime.GOMAXPROCS(0)
		if poolN < 2 {
			return
		}
		parts = make(chan part, 4*poolN)
		for range poolN - 1 {
			go worker()
		}
	})
	return poolN
}

func worker() {
	for p := range parts {
		p.j.run(p.lo, p.hi)
		p.j.wg.Done()
	}
}

func (j *job) run(lo, hi int) {
	if j.q != nil {
		if j.n == 0 {
			matVecQ(j.out, j.q, j.x, lo, hi)
		} else {
			matMulQ(j.out, j.q, j.x, j.n, j.ostride, lo, hi)
		}
		return
	}
	if j.n == 0 {
		matVec(j.out[lo:hi], j.w[lo*j.cols:hi*j.cols], j.x, j.cols)
		return
	}
	matMul(j.out[lo:], j.w[lo*j.cols:hi*j.cols], j.x, hi-lo, j.cols, j.n, j.ostride)
}

// parallelMatVec splits the rows into poolN ranges (multiples of 4 rows so
// the kernel's four-row blocks stay whole), queues all but the first to the
// pool, runs the first on the caller and waits.
func parallelMatVec(out, w, x []float32, cols int) {
	j := getJob()
	j.out, j.w, j.x, j.cols, j.n, j.ostride = out, w, x, cols, 0, 0
	j.split(len(out))
}

// parallelMatMul is parallelMatVec for MatMul: each part computes its row
// range for all n vectors.
func parallelMatMul(out, w, x []float32, rows, cols, n int) {
	j := getJob()
	j.out, j.w, j.x, j.cols, j.n, j.ostride = out, w, x, cols, n, rows
	j.split(rows)
}

// split runs j over rows [0, rows): it queues all parts but the first to
// the pool, runs the first on the caller, waits and recycles j.
func (j *job) split(rows int) {
	chunk := (rows + poolN - 1) / poolN
	chunk = (chunk + 3) &^ 3
	j.chunk = chunk
	for lo := chunk; lo < rows; lo += chunk {
		j.wg.Add(1)
		parts <- part{j: j, lo: lo, hi: min(lo+chunk, rows)}
	}
	j.run(0, min(chunk, rows))
	j.wg.Wait()
	putJob(j)
}
