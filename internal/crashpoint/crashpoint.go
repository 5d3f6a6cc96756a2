// Package crashpoint kills the process at named points of the code, so
// that the crash tests can stop the real binary exactly where a crash is
// the hardest to survive (docs/testing.md, "Crash tests"). Disarmed, which
// is always the case outside those tests, Here costs one atomic load.
//
// The bridge arms it from ZULIP_BRIDGE_CRASH_AT=<point>:<n> (the n-th time
// <point> is reached, the process sends itself SIGKILL): a test hook, not
// a setting, so it is in no configuration table.
package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// The points.
const (
	// SpoolAppended is right after a batch is durable in the spool, before
	// the checkpoint that lets Zulip forget it.
	SpoolAppended = "spool-appended"
	// Forwarded is right after the broker confirmed a batch from the
	// spool, before the spool records it as forwarded.
	Forwarded = "forwarded"
)

// EnvVar arms a point in the bridge binary.
const EnvVar = "ZULIP_BRIDGE_CRASH_AT"

type armed struct {
	point string
	n     int64
	hits  atomic.Int64
}

var current atomic.Pointer[armed]

// Arm parses "<point>:<n>" (n >= 1) and arms that point; "" disarms.
func Arm(spec string) error {
	if spec == "" {
		current.Store(nil)
		return nil
	}
	point, count, ok := strings.Cut(spec, ":")
	n, err := strconv.ParseInt(count, 10, 64)
	if !ok || err != nil || n < 1 || (point != SpoolAppended && point != Forwarded) {
		return fmt.Errorf("%s: %q is not <point>:<n> with point %s or %s and n >= 1", EnvVar, spec, SpoolAppended, Forwarded)
	}
	current.Store(&armed{point: point, n: n})
	return nil
}

// Here kills the process if point is armed and reached for the n-th time.
func Here(point string) {
	a := current.Load()
	if a == nil || a.point != point || a.hits.Add(1) != a.n {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
