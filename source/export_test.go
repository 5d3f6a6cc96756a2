package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// ParseEvents is parseEvents, for the tests of package source_test, which
// may import packages that import this one (mapping).
func ParseEvents(body []byte, after int64) ([]Event, error) { return parseEvents(body, after) }

// ParseMessages is parseMessages, likewise.
func ParseMessages(body []byte, anchor int64) ([]Message, bool, error) {
	return parseMessages(body, anchor)
}

// ResponseOfExamples returns a GET /events response of Zulip's example of
// every event type and then extra, their ids numbered from 0, and how many
// events it holds.
func ResponseOfExamples(tb testing.TB, extra ...json.RawMessage) (body []byte, n int) {
	tb.Helper()
	raw, err := os.ReadFile("zuliptest/testdata/zulip/example-events.json")
	if err != nil {
		tb.Fatal(err)
	}
	var examples []json.RawMessage
	if err := json.Unmarshal(raw, &examples); err != nil {
		tb.Fatal(err)
	}
	all := append(examples, extra...)
	var b bytes.Buffer
	b.WriteString(`{"result":"success","msg":"","events":[`)
	for i, ex := range all {
		var ev map[string]json.RawMessage
		if err := json.Unmarshal(ex, &ev); err != nil {
			tb.Fatal(err)
		}
		ev["id"] = json.RawMessage(fmt.Sprint(i))
		e, err := json.Marshal(ev)
		if err != nil {
			tb.Fatal(err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteString(`]}`)
	return b.Bytes(), len(all)
}
