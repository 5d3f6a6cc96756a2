package pipeline_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestTooLargeMessage: a message larger than the broker takes is not
// retried forever (which would hold every later event back): a
// bridge.invalid notice under its dedup key takes its place, the queue moves
// on, and the messages around it arrive as usual.
func TestTooLargeMessage(t *testing.T) {
	w := newWorld(t)
	const limit = 16 << 10
	b := w.start(options{maxBytes: limit})
	q := b.queueID()
	before := w.send(2, "small")
	big, err := w.sim.SendMessage(zuliptest.SendRequest{Type: "stream", To: "Denmark", Topic: "big", Content: strings.Repeat("x", 64<<10)})
	if err != nil {
		t.Fatal(err)
	}
	after := w.send(2, "small")
	w.waitAcked(q)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}

	host := strings.TrimPrefix(w.sim.URL, "http://")
	byKey := map[string][]stored{}
	for _, m := range w.readStream() {
		k := m.h(mapping.HeaderDedupKey)
		byKey[k] = append(byKey[k], m)
	}
	for _, id := range append(before, after...) {
		if got := byKey[fmt.Sprintf("%s/message/%d", host, id)]; len(got) != 1 || got[0].subject == "zulip.bridge.invalid" {
			t.Errorf("message %d: %v, want it once on its own subject", id, got)
		}
	}
	got := byKey[fmt.Sprintf("%s/message/%d", host, big)]
	if len(got) != 1 || got[0].subject != "zulip.bridge.invalid" {
		t.Fatalf("large message %d: %v, want one zulip.bridge.invalid notice", big, got)
	}
	var notice struct {
		Reason  string `json:"reason"`
		Type    string `json:"type"`
		Subject string `json:"subject"`
		Bytes   int    `json:"bytes"`
		Limit   int    `json:"limit"`
	}
	if err := json.Unmarshal(got[0].data, &notice); err != nil {
		t.Fatal(err)
	}
	if notice.Limit != limit || notice.Bytes <= limit || notice.Type != "message" || !strings.HasPrefix(notice.Subject, "zulip.message.stream.") || !strings.Contains(notice.Reason, "exceeds") {
		t.Errorf("notice %s", got[0].data)
	}
	if len(got[0].data) > limit {
		t.Errorf("the notice itself is %d bytes", len(got[0].data))
	}
}
