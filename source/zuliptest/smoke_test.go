package zuliptest_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

func TestSmokeRegisterSendPoll(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(url.Values{"event_types": {`["message"]`}})
	r := a.do(http.MethodPost, "/messages", url.Values{"type": {"stream"}, "to": {"Denmark"}, "topic": {"hello"}, "content": {"hi"}})
	if r.status != http.StatusOK {
		t.Fatalf("send: %d %s", r.status, r.raw)
	}
	ev := a.getEvents(q, -1, false).events(t)
	if len(ev) != 1 || ev[0]["type"] != "message" {
		t.Fatalf("events = %v", ev)
	}
	t.Logf("%s", srv.Delivered(q)[0].Raw)
}
