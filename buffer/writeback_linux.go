package buffer

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing a range of f out, without
// waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE). It is only a
// hint that shortens a later fsync; durability still comes from the fsync.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
