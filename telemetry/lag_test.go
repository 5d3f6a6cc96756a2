package telemetry

import (
	"fmt"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// TestMessageLagFromMapper: the lag comes from the timestamp the mapper
// read (mapping.EventInfo.Timestamp), so it is the same for live and
// backfilled messages and in every CloudEvents mode, structured included,
// where the payload is an envelope; messages whose timestamp is missing,
// not a whole non-negative number, or beyond year 9999, and other events,
// give none.
func TestMessageLagFromMapper(t *testing.T) {
	site, err := source.ParseSite("https://zulip.example.com")
	if err != nil {
		t.Fatal(err)
	}
	message := func(id int, ts string) []byte {
		return fmt.Appendf(nil, `{"id":%d,"type":"stream","stream_id":12,"display_recipient":"Denmark","subject":"greetings","timestamp":%s,"content":"<p>\"timestamp\": 1</p>"}`, id, ts)
	}
	live := func(id int, ts string) []byte {
		return fmt.Appendf(nil, `{"type":"message","id":%d,"flags":[],"message":%s}`, id, message(id, ts))
	}
	for _, cfg := range []mapping.Config{
		{},
		{CloudEvents: mapping.CloudEventsBinary, Sink: mapping.SinkNATS},
		{CloudEvents: mapping.CloudEventsStructured, Sink: mapping.SinkNATS},
		{CloudEvents: mapping.CloudEventsStructured, Sink: mapping.SinkKafka},
	} {
		name := "off"
		if cfg.CloudEvents != "" {
			name = cfg.CloudEvents + "-" + cfg.Sink
		}
		t.Run(name, func(t *testing.T) {
			m, err := mapping.New(cfg, site)
			if err != nil {
				t.Fatal(err)
			}
			var batch []*mapping.Message
			add := func(msg *mapping.Message, err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, msg)
			}
			const q = "1700000000:4242"
			add(m.Map(live(1, fmt.Sprint(epoch.Unix()-100)), q))             // lag 100
			add(m.MapBackfilled(message(2, fmt.Sprint(epoch.Unix()-40)), q)) // lag 40
			add(m.Map(live(3, fmt.Sprint(epoch.Unix()+5)), q))               // server clock ahead: lag 0
			add(m.Map(live(4, "253402300800"), q))                           // beyond year 9999
			add(m.Map(live(5, "0"), q))
			add(m.Map(live(6, "1700000000.5"), q))
			add(m.Map(live(7, `"1700000000"`), q))
			add(m.Map([]byte(`{"type":"reaction","op":"add","id":8,"message_id":1,"timestamp":1700000000,"message":{"timestamp":1700000000}}`), q))
			add(m.Control("resync", q, []byte(`{"message":{"timestamp":1700000000}}`)))

			tel, _ := newTelemetry(t, Config{})
			tel.Observer().Published(batch, nil, 0)
			got := scrapeMetrics(t, tel)
			lag := got.histogram(t, "zulip_bridge_message_lag_seconds", nil)
			if lag.GetSampleCount() != 3 || lag.GetSampleSum() != 140 {
				t.Errorf("message lag: count %d sum %v, want 3 and 140", lag.GetSampleCount(), lag.GetSampleSum())
			}
			if n := got.counter(t, "zulip_bridge_events_published_total", map[string]string{"type": "message"}); n != 7 {
				t.Errorf("published messages = %v, want 7", n)
			}
		})
	}
}
