package tensor

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cpuTime is this process's user+system CPU time. On a shared, loaded
// machine wall-clock rates understate what the hardware does; bytes per
// CPU-second (per core) are reported alongside.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports bytes per CPU-second of the work since cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration, bytes int64) {
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(bytes)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
}

// BenchmarkMemoryBandwidth measures the machine's streaming read
// bandwidth: bytes/s of summing a 512 MiB buffer (far beyond the caches)
// as 64-bit words, on one goroutine and split across GOMAXPROCS
// goroutines, per wall-clock second and per CPU-second. Decoding one token is bound by reading the weights, so this
// is the ceiling a MatVec's bytes/s is measured against.
func BenchmarkMemoryBandwidth(b *testing.B) {
	buf := make([]uint64, 512<<20/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	for _, g := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			b.SetBytes(int64(8 * len(buf)))
			sums := make([]uint64, g*8) // 64 bytes apart: no false sharing
			cpu0 := cpuTime()
			for b.Loop() {
				var wg sync.WaitGroup
				part := len(buf) / g
				for k := range g {
					wg.Add(1)
					go func() {
						defer wg.Done()
						sums[k*8] = sumWords(buf[k*part : (k+1)*part])
					}()
				}
				wg.Wait()
			}
			reportCPU(b, cpu0, int64(8*len(buf)))
		})
	}
}

// sumWords adds the words with four independent chains, so the loop is
// bound by loads rather than by the adds' latency.
func sumWords(v []uint64) uint64 {
	var s0, s1, s2, s3 uint64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		w := v[i : i+4 : i+4]
		s0 += w[0]
		s1 += w[1]
		s2 += w[2]
		s3 += w[3]
	}
	for ; i < len(v); i++ {
		s0 += v[i]
	}
	return s0 + s1 + s2 + s3
}
