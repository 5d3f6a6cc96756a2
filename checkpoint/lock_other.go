//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd || solaris)

package checkpoint

import "os"

// lockFile only opens path: this platform has no flock, so nothing stops
// two bridges from sharing a state directory here.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
