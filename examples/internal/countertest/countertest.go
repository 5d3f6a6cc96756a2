// Package countertest is what the stream-counter examples' tests share:
// the messages the bridge would publish for a small conversation, and a
// scrape of the counters a service serves.
package countertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// Published is one message as the bridge publishes it; Copy marks a second
// copy of an earlier message (same dedup key), as a broker consumer can
// receive one.
type Published struct {
	*mapping.Message
	Copy bool
}

func streamMessage(id int, streamID int, stream, topic string) string {
	return fmt.Sprintf(`{"type":"message","id":%d,"flags":[],"message":{"id":%d,"type":"stream","stream_id":%d,"display_recipient":%q,"subject":%q,"sender_id":10,"sender_email":"hamlet@zulip.example.com","sender_full_name":"King Hamlet","content":"hi","timestamp":1700000000,"recipient_id":20}}`,
		id, 100+id, streamID, stream, topic)
}

// Messages maps a small conversation with the bridge's mapper: three
// messages to Denmark (stream 1), one to Verona (stream 5), a direct
// message, a reaction, a bridge.resync, and a second copy of a Denmark
// message.
func Messages(t testing.TB) []Published {
	t.Helper()
	site, err := source.ParseSite("https://chat.example.com")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.New(mapping.Config{}, site)
	if err != nil {
		t.Fatal(err)
	}
	raws := []string{
		streamMessage(1, 1, "Denmark", "castle"),
		streamMessage(2, 5, "Verona", "balcony"),
		streamMessage(3, 1, "Denmark", "castle"),
		`{"type":"message","id":4,"flags":[],"message":{"id":104,"type":"private","display_recipient":[{"id":10,"email":"hamlet@zulip.example.com","full_name":"King Hamlet"},{"id":11,"email":"bot@zulip.example.com","full_name":"Bot"}],"subject":"","sender_id":10,"sender_email":"hamlet@zulip.example.com","sender_full_name":"King Hamlet","content":"psst","timestamp":1700000001,"recipient_id":30}}`,
		`{"type":"reaction","op":"add","id":5,"message_id":101,"user_id":10,"user":{"user_id":10,"email":"hamlet@zulip.example.com","full_name":"King Hamlet"},"emoji_name":"tada","emoji_code":"1f389","reaction_type":"unicode_emoji"}`,
		streamMessage(6, 1, "Denmark", "moat"),
	}
	var out []Published
	for _, raw := range raws {
		msg, err := m.Map([]byte(raw), "q1")
		if err != nil {
			t.Fatalf("map %s: %v", raw, err)
		}
		out = append(out, Published{Message: msg})
	}
	resync, _ := json.Marshal(map[string]any{
		"type": "resync", "site": "https://chat.example.com", "old_queue_id": "q0", "old_last_event_id": 9, "new_queue_id": "q1",
		"detected_at": time.Unix(1700000000, 0).UTC(), "registered_at": time.Unix(1700000001, 0).UTC(),
		"from_message_id": 90, "to_message_id": 99, "messages_backfilled": 0, "unrecoverable": "other events of the gap",
	})
	ctl, err := m.Control("resync", "q0", resync)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, Published{Message: ctl})
	out = append(out, Published{Message: out[2].Message, Copy: true})
	return out
}

// Want is what a counter must show for Messages.
var Want = map[string]float64{
	`zulip_stream_messages_total{stream="Denmark",stream_id="1"}`: 3,
	`zulip_stream_messages_total{stream="Verona",stream_id="5"}`:  1,
	`zulip_direct_messages_total`:                                 1,
	`zulip_bridge_resyncs_total`:                                  1,
}

// Scrape reads the counters at http://addr/metrics, keyed as in Want.
func Scrape(t testing.TB, addr string) (map[string]float64, error) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out, nil
}

// CheckWant waits until drained says the service acknowledged everything
// it was given (so its counters are final: it counts before it
// acknowledges), then checks the counters at addr are Want.
func CheckWant(t testing.TB, addr string, drained func() bool) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, "the service to acknowledge every message", drained)
	got, err := Scrape(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(Want) {
		t.Errorf("counters %v, want %v", got, Want)
	}
	for k, v := range Want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
