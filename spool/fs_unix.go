//go:build linux || darwin || freebsd

package spool

import "golang.org/x/sys/unix"

// filesystemBytes is the size of the filesystem holding dir, 0 when it
// cannot be told.
func filesystemBytes(dir string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0
	}
	return int64(st.Blocks) * int64(st.Bsize)
}
