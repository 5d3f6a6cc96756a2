//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris

package checkpoint

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockFile opens path and takes an exclusive flock on it without waiting.
// The lock belongs to the open file, so it is released when the file is
// closed or the process dies, however it dies: no stale lock after SIGKILL.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLockHeld
		}
		return nil, err
	}
	return f, nil
}
