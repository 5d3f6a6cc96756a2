package main

import (
	"bytes"
	"errors"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// TestSetMemoryLimit drives setMemoryLimit with a stand-in for the cgroup:
// a limit becomes 90% of it, logged once; GOMEMLIMIT wins without the
// cgroup being read; no limit, or no cgroup, changes nothing. It sets the
// test process's own soft limit, so it restores it and is not parallel.
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	unchanged := func(t *testing.T) {
		t.Helper()
		if got := debug.SetMemoryLimit(-1); got != prev {
			t.Errorf("soft memory limit changed to %d, want %d", got, prev)
		}
	}

	t.Run("cgroup limit", func(t *testing.T) {
		defer debug.SetMemoryLimit(prev)
		var logs bytes.Buffer
		got := setMemoryLimit(nil, memlimit.Limit(1<<30), &logs)
		const want = 966367641 // 90% of 1 GiB
		if got != want {
			t.Errorf("set %d, want %d", got, want)
		}
		if cur := debug.SetMemoryLimit(-1); cur != want {
			t.Errorf("runtime soft limit %d, want %d", cur, want)
		}
		if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), `"gomemlimit":966367641`) ||
			!strings.Contains(logs.String(), `"cgroup_memory_limit":1073741824`) {
			t.Errorf("want one JSON line with gomemlimit and cgroup_memory_limit, got:\n%s", logs.String())
		}
	})
	t.Run("GOMEMLIMIT wins", func(t *testing.T) {
		var logs bytes.Buffer
		read := false
		got := setMemoryLimit([]string{"GOMEMLIMIT=200MiB", "BRIDGE_LOG_FORMAT=text"},
			func() (uint64, error) { read = true; return 1 << 30, nil }, &logs)
		if got != 0 || read {
			t.Errorf("set %d, cgroup read %v: want GOMEMLIMIT left to the runtime", got, read)
		}
		unchanged(t)
		if !strings.Contains(logs.String(), "gomemlimit=200MiB") {
			t.Errorf("log does not show GOMEMLIMIT: %s", logs.String())
		}
	})
	for name, err := range map[string]error{"no limit": memlimit.ErrNoLimit, "no cgroup": memlimit.ErrNoCgroup, "unreadable": errors.New("permission denied")} {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			if got := setMemoryLimit(nil, func() (uint64, error) { return 0, err }, &logs); got != 0 {
				t.Errorf("set %d", got)
			}
			unchanged(t)
			if logs.Len() != 0 {
				t.Errorf("logged at info without a limit: %s", logs.String())
			}
		})
	}
	t.Run("unlimited cgroup value", func(t *testing.T) {
		defer debug.SetMemoryLimit(prev)
		if got := setMemoryLimit(nil, memlimit.Limit(math.MaxUint64), &bytes.Buffer{}); got <= 0 {
			t.Errorf("set %d for a huge limit, want a positive limit", got)
		}
	})
}
