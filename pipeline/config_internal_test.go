package pipeline

import (
	"reflect"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// TestConfigZeroValue: the zero value validates and means what the
// environment's defaults mean, as for every Config of the bridge.
func TestConfigZeroValue(t *testing.T) {
	var fromEnv Config
	if err := envconfig.Parse(&fromEnv, nil); err != nil {
		t.Fatal(err)
	}
	if got := (Config{}).withDefaults(); !reflect.DeepEqual(got, fromEnv) {
		t.Errorf("zero value means %+v, the environment's defaults are %+v", got, fromEnv)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("Validate(Config{}) = %v", err)
	}
	// Every problem at once, each in the one format.
	err := Config{ShutdownTimeout: -1, BackfillPageSize: 6000, PublishTimeout: -1, PublishBatch: -1, StallTimeout: 1}.Validate()
	lines := strings.Split(err.Error(), "\n")
	want := []string{"BRIDGE_SHUTDOWN_TIMEOUT", "BRIDGE_BACKFILL_PAGE_SIZE", "BRIDGE_PUBLISH_TIMEOUT", "BRIDGE_PUBLISH_BATCH", "BRIDGE_STALL_TIMEOUT"}
	if len(lines) != len(want) {
		t.Fatalf("Validate = %q; want %d problems", err, len(want))
	}
	for i, v := range want {
		if !strings.HasPrefix(lines[i], v+": ") || !strings.HasSuffix(lines[i], ")") || !strings.Contains(lines[i], "(example: "+v+"=") {
			t.Errorf("problem %d = %q; want %s: ... (example: %s=...)", i, lines[i], v, v)
		}
	}
}
