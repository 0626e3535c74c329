//go:build !linux

package buffer

import "os"

// startWriteback does nothing where sync_file_range is not available.
func startWriteback(*os.File, int64, int64) {}
