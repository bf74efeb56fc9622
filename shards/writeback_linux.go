//go:build linux && (amd64 || arm64)

package shards

import (
	"errors"
	"os"
	"syscall"
)

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE from linux/fs.h: start
// writeback of dirty pages in the range without waiting for it.
const syncFileRangeWrite = 2

// startWriteback asks the kernel to start writing n bytes of f at off to
// disk without waiting, so the fsync that ends a fetch finds little left
// to write. Failure is harmless: the fsync still writes everything.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
	})
}

// preallocate reserves size bytes of disk for f and makes it that long.
// Allocating the blocks up front makes the writes that fill them cheaper
// and reports a full disk before any byte is fetched. Where the file
// system cannot preallocate, f is only extended.
func preallocate(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return f.Truncate(size)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = syscall.Fallocate(int(fd), 0, 0, size)
	}); err != nil {
		return f.Truncate(size)
	}
	if errors.Is(ferr, syscall.EOPNOTSUPP) || errors.Is(ferr, syscall.ENOSYS) || errors.Is(ferr, syscall.EINVAL) {
		return f.Truncate(size)
	}
	return ferr
}
