package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
)

// TestCheckpointRefused: a checkpoint the bridge cannot take for its own
// stops Run with an error that says why and where, and nothing is reset:
// no queue is registered and the file is left as it was.
func TestCheckpointRefused(t *testing.T) {
	const otherSite = "https://chat.other.example"
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, dir string)
		is    error
		// says returns what the error must name.
		says func(w *world) []string
	}{
		{
			name: "another site",
			write: func(t *testing.T, dir string) {
				s, err := checkpoint.OpenFile(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				cp := checkpoint.Checkpoint{Site: otherSite, QueueID: "1700000000:12", LastEventID: 41, MaxMessageID: 99}
				if err := s.Save(context.Background(), cp); err != nil {
					t.Fatal(err)
				}
			},
			says: func(w *world) []string { return []string{otherSite, w.sim.URL} },
		},
		{
			name: "corrupt",
			write: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, checkpoint.FileName), []byte(`{"version":1,"site":"http`), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			is:   checkpoint.ErrCorrupt,
			says: func(w *world) []string { return []string{filepath.Join(w.stateDir, checkpoint.FileName)} },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			tc.write(t, w.stateDir)
			path := filepath.Join(w.stateDir, checkpoint.FileName)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			err = w.start(options{}).wait()
			if err == nil {
				t.Fatal("Run returned nil")
			}
			for _, s := range tc.says(w) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if q := w.sim.Queues(); len(q) != 0 {
				t.Errorf("a queue was registered: %v", q)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Errorf("checkpoint file changed from %s to %s", before, after)
			}
		})
	}
}
