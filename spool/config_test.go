package spool

import (
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// TestConfigZeroValue: the zero value validates and means what an empty
// environment means (docs/development.md, the config contract): the mode
// decided by the checkpoint and broker, a 1 GiB limit.
func TestConfigZeroValue(t *testing.T) {
	var parsed Config
	if err := envconfig.Parse(&parsed, nil); err != nil {
		t.Fatal(err)
	}
	if parsed.MaxBytes != DefaultMaxBytes || parsed.Mode != "" || parsed.Dir != "" {
		t.Errorf("parsed from an empty environment: %+v, want MaxBytes %d and the rest unset", parsed, DefaultMaxBytes)
	}
	var zero Config
	for _, c := range []Config{zero, parsed} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", c, err)
		}
		for _, tt := range []struct{ file, embedded, want bool }{{true, false, true}, {false, false, false}, {true, true, false}} {
			if got := c.Enabled(tt.file, tt.embedded); got != tt.want {
				t.Errorf("%+v: Enabled(file checkpoint %v, embedded broker %v) = %v, want %v", c, tt.file, tt.embedded, got, tt.want)
			}
		}
	}
	// Open with the zero limit takes the documented default (or half the
	// filesystem when that is smaller).
	s, err := Open(t.TempDir(), Options{MaxBytes: zero.MaxBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	if st := s.Stats(); st.Limit != DefaultMaxBytes && !s.Lowered() {
		t.Errorf("limit with MaxBytes 0: %d, want %d", st.Limit, DefaultMaxBytes)
	}
	err = Config{Mode: "maybe", MaxBytes: 1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "BRIDGE_SPOOL: ") || !strings.Contains(err.Error(), "BRIDGE_SPOOL_MAX_BYTES: ") {
		t.Errorf("Validate reports every problem: %v", err)
	}
}
