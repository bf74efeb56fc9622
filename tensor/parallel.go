package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// ParallelFor calls f(i) for every i in [0, n), spreading the calls over
// the calling goroutine and a process-wide pool of GOMAXPROCS−1 worker
// goroutines (started on first use, parked on a channel when idle), and
// returns when all calls have returned. Indices are handed out one at a
// time, so uneven items balance. The calls for different i run
// concurrently: they must not write the same memory. f must not call
// ParallelFor itself (the pool could deadlock); it may call MatMul and
// MatVec, whose pool is separate.
//
// ParallelFor does not allocate; to keep the caller from allocating too,
// make f once (e.g. a method value stored in a struct) rather than a new
// closure per call.
func ParallelFor(n int, f func(i int)) {
	if n <= 0 {
		return
	}
	w := forWorkers()
	if n == 1 || w < 2 {
		for i := range n {
			f(i)
		}
		return
	}
	j := getForJob()
	j.f, j.n = f, int64(n)
	j.next.Store(0)
	helpers := min(w, n) - 1
	j.wg.Add(helpers)
	for range helpers {
		forQueue <- j
	}
	j.work()
	j.wg.Wait()
	j.f = nil
	select {
	case forFree <- j:
	default:
	}
}

type forJob struct {
	f    func(int)
	n    int64
	next atomic.Int64
	wg   sync.WaitGroup
}

func (j *forJob) work() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.f(int(i))
	}
}

var (
	forOnce  sync.Once
	forN     int
	forQueue chan *forJob
	forFree  = make(chan *forJob, 16)
)

func getForJob() *forJob {
	select {
	case j := <-forFree:
		return j
	default:
		return new(forJob)
	}
}

func forWorkers() int {
	forOnce.Do(func() {
		forN = runtime.GOMAXPROCS(0)
		if forN < 2 {
			return
		}
		forQueue = make(chan *forJob, 4*forN)
		for range forN - 1 {
			go func() {
				for j := range forQueue {
					j.work()
					j.wg.Done()
				}
			}()
		}
	})
	return forN
}
