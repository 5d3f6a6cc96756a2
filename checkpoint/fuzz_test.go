package checkpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
)

// decodeError is every message DecodeFile may return: a sentinel, then what is
// wrong in words, positions, field names, JSON kinds and numbers, never a
// piece of the data (a corrupt file could hold anything, a credential too).
var decodeError = regexp.MustCompile(`^(checkpoint corrupt: (` +
	`empty|invalid JSON at byte [0-9]+ of [0-9]+|` +
	`field (version|site|queue_id|last_event_id|max_message_id|updated_at) is a JSON (string|number( [-+.0-9eE]+)?|bool|array|object), want [a-z0-9.]+|` +
	`a JSON (string|number( [-+.0-9eE]+)?|bool|array), want an object|` +
	`updated_at is not an RFC 3339 time|a field value does not parse|no version field|version -?[0-9]+|` +
	`site is empty|last_event_id -[0-9]+ is below -1|max_message_id -[0-9]+ is below -1|last_event_id [0-9]+ without a queue_id|` +
	`neither slot holds a whole checkpoint|[0-9]+ bytes, not two slots of the same size)|` +
	`unsupported checkpoint version [0-9]+ \(this bridge reads version 1\))$`)

// FuzzDecode feeds DecodeFile, and the file store's Load, arbitrary stored
// bytes, slotted files among them. Either the error wraps exactly one of
// ErrCorrupt and ErrUnsupportedVersion in a message of the templates above
// (Load's also names the file), or the checkpoint is valid: Encode accepts
// it, and what it writes decodes to the same checkpoint and encodes to the
// same bytes. Load returns what DecodeFile returns, which is what Decode
// returns for anything not in the slotted layout.
func FuzzDecode(f *testing.F) {
	golden, err := os.ReadFile("testdata/v1.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	for _, s := range []string{
		// checkpoint_test.go.
		`{"version":1,"site":"x","api_key":"s3cr3t-value",`,
		`{"version":1,"site":"https://chat.example.com","queue_id":"","last_event_id":-1,"max_message_id":0,"updated_at":"0001-01-01T00:00:00Z"}`,
		`{"version":2,"site":"x"}`, `{"version":0}`, `{"site":"x"}`, `[]`, `null`, ``, " \n",
		// Edges: types, case-insensitive keys, positions, times, duplicates.
		`{"version":1,"site":"s","queue_id":"q","last_event_id":-2}`, `{"version":"1"}`, `{"version":1.5}`,
		`{"VERSION":1,"Site":"s","queue_id":"q","last_event_id":1e2}`, `{"version":1,"site":"s","last_event_id":3}`,
		`{"version":1,"site":"s","last_event_id":-1,"sink_position":{ "a" : [1, "<\u00e9>"] }}`,
		`{"version":1,"site":"s","last_event_id":-1,"sink_position":null,"updated_at":"2026-03-01T12:00:00.123456789-23:59"}`,
		`{"version":1,"site":"s","last_event_id":-1,"updated_at":"yesterday"}`, `{"version":1,"version":2}`,
		`{"version":1,"site":"\xff","last_event_id":-1,"max_message_id":-1,"future_field":{"x":1}}`,
	} {
		f.Add([]byte(s))
	}
	store, err := checkpoint.OpenFile(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	// Slotted files as Save writes them: one slot, two, one torn.
	base, err := checkpoint.Decode(golden)
	if err != nil {
		f.Fatal(err)
	}
	for i := range 2 {
		cp := base
		cp.LastEventID += int64(i)
		if err := store.Save(context.Background(), cp); err != nil {
			f.Fatal(err)
		}
		slotted, err := os.ReadFile(store.Path())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(slotted)
		torn := bytes.Clone(slotted)
		copy(torn[len(torn)/2+30:], "torn")
		f.Add(torn)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cp, err := checkpoint.DecodeFile(data)
		if !bytes.HasPrefix(data, []byte(`{"seq":`)) {
			cp2, err2 := checkpoint.Decode(data)
			if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || (err == nil && !sameCheckpoint(cp, cp2)) {
				t.Fatalf("DecodeFile(%q) = %+v, %v; Decode = %+v, %v", data, cp, err, cp2, err2)
			}
		}
		if err := os.WriteFile(store.Path(), data, 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, found, lerr := store.Load(context.Background())
		if err != nil {
			corrupt, newer := errors.Is(err, checkpoint.ErrCorrupt), errors.Is(err, checkpoint.ErrUnsupportedVersion)
			if corrupt == newer || !decodeError.MatchString(err.Error()) {
				t.Fatalf("Decode(%q): error %q is not one of ErrCorrupt, ErrUnsupportedVersion in a known message", data, err)
			}
			if found || lerr == nil || errors.Is(lerr, checkpoint.ErrCorrupt) != corrupt || lerr.Error() != "load checkpoint "+store.Path()+": "+err.Error() {
				t.Fatalf("Load of %q = %v, %v; Decode says %v", data, found, lerr, err)
			}
			return
		}
		if lerr != nil || !found || !sameCheckpoint(loaded, cp) {
			t.Fatalf("Load of %q = %+v, %v, %v; Decode says %+v", data, loaded, found, lerr, cp)
		}
		if cp.Version != checkpoint.FormatVersion {
			t.Fatalf("Decode(%q): version %d", data, cp.Version)
		}
		enc, err := checkpoint.Encode(cp)
		if err != nil {
			t.Fatalf("Decode(%q) = %+v, which Encode refuses: %v", data, cp, err)
		}
		again, err := checkpoint.Decode(enc)
		if err != nil || !sameCheckpoint(again, cp) {
			t.Fatalf("Decode(%q) = %+v, encoded as %s, decodes to %+v, %v", data, cp, enc, again, err)
		}
		if enc2, err := checkpoint.Encode(again); err != nil || !bytes.Equal(enc2, enc) {
			t.Fatalf("Encode is not stable: %s, then %s, %v", enc, enc2, err)
		}
	})
}

// sameCheckpoint compares two checkpoints as a bridge reads them: the same
// instant with the same offset, and the same sink position as JSON (Encode
// compacts it).
func sameCheckpoint(a, b checkpoint.Checkpoint) bool {
	if !a.UpdatedAt.Equal(b.UpdatedAt) || a.UpdatedAt.Format(time.RFC3339Nano) != b.UpdatedAt.Format(time.RFC3339Nano) {
		return false
	}
	if !sameJSON(a.SinkPosition, b.SinkPosition) {
		return false
	}
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	a.SinkPosition, b.SinkPosition = nil, nil
	return reflect.DeepEqual(a, b)
}

func sameJSON(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&x) == nil && db.Decode(&y) == nil && reflect.DeepEqual(x, y)
}
