package mapping

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zulip-bridge/zulip-bridge/source"
)

const (
	testSite  = "https://chat.example.com"
	testHost  = "chat.example.com"
	testQueue = "1517975029:0"
)

// mustSite parses a ZULIP_SITE value the tests know to be valid.
func mustSite(raw string) source.Site {
	s, err := source.ParseSite(raw)
	if err != nil {
		panic(err)
	}
	return s
}

// example is one event of Zulip's API documentation.
type example struct {
	name string // NN-type[-op], for file and subtest names
	raw  []byte // the event as documented
	// event is raw as a queue delivers it: six documented examples have
	// no "id", which the server adds to every event it queues; event
	// adds "id":0 to those and is raw itself for the others.
	event []byte
}

// loadExamples reads the 71 events of testdata/zulip/example-events.json
// byte for byte as they appear in the file.
func loadExamples(tb testing.TB) []example {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "zulip", "example-events.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		tb.Fatal(err)
	}
	if len(raws) != 71 {
		tb.Fatalf("example-events.json has %d events, want 71", len(raws))
	}
	out := make([]example, len(raws))
	for i, raw := range raws {
		var head struct {
			Type string           `json:"type"`
			Op   string           `json:"op"`
			ID   *json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			tb.Fatal(err)
		}
		name := head.Type
		if head.Op != "" {
			name += "-" + head.Op
		}
		ev := []byte(raw)
		if head.ID == nil {
			ev = append([]byte(`{"id":0,`), bytes.TrimLeft(raw, "{")...)
		}
		out[i] = example{name: twoDigits(i) + "-" + name, raw: raw, event: ev}
	}
	return out
}

func twoDigits(i int) string { return string([]byte{byte('0' + i/10), byte('0' + i%10)}) }

func newMapper(tb testing.TB, cfg Config) *Mapper {
	tb.Helper()
	m, err := New(cfg, mustSite(testSite))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// checkMessage asserts what must hold of every message the mapper returns.
func checkMessage(tb testing.TB, msg *Message) {
	tb.Helper()
	if err := checkName([]byte(msg.Subject), natsName); err != nil {
		tb.Errorf("subject: %v", err)
	}
	if err := checkName([]byte(msg.Topic), kafkaName); err != nil {
		tb.Errorf("topic: %v", err)
	}
	if msg.DedupKey == "" {
		tb.Error("empty dedup key")
	}
	if v, _ := msg.Get(HeaderDedupKey); v != msg.DedupKey {
		tb.Errorf("%s = %q, want the dedup key %q", HeaderDedupKey, v, msg.DedupKey)
	}
	if msg.Key != nil && len(msg.Key) == 0 {
		tb.Error("key is empty but not nil")
	}
	for _, h := range msg.Headers {
		if !utf8.ValidString(h.Value) {
			tb.Errorf("header %s: invalid UTF-8 %q", h.Key, h.Value)
		}
		for _, r := range h.Value {
			if r < 0x20 || r >= 0x7f && r <= 0x9f {
				tb.Errorf("header %s: control character %U in %q", h.Key, r, h.Value)
			}
		}
	}
}

func unixRFC3339(sec int64) string { return time.Unix(sec, 0).UTC().Format(time.RFC3339) }
