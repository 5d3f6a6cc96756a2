package nats

import (
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

func TestNatsMsgHeaders(t *testing.T) {
	m := &mapping.Message{
		Subject: "zulip.message.stream.1",
		Headers: []mapping.Header{
			{Key: "A", Value: "1"},
			{Key: "B", Value: "x"},
			{Key: "A", Value: "2"},
			{Key: "C", Value: ""},
		},
		Payload: []byte("{}"),
	}
	nm, err := natsMsg(m, "site/message/1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"A": {"1", "2"}, "B": {"x"}, "C": {""}, jetstream.MsgIDHeader: {"site/message/1"}}
	if len(nm.Header) != len(want) {
		t.Errorf("headers %v, want %v", nm.Header, want)
	}
	for k, v := range want {
		if !slices.Equal(nm.Header[k], v) {
			t.Errorf("header %s = %q, want %q", k, nm.Header[k], v)
		}
	}
	// Appending to one value list must not overwrite a neighbour.
	nm.Header["A"] = append(nm.Header["A"], "3")
	if nm.Header.Get("B") != "x" {
		t.Errorf("values share storage: B = %q", nm.Header.Get("B"))
	}

	nm, err = natsMsg(m, "")
	if err != nil || nm.Header.Get(jetstream.MsgIDHeader) != "" {
		t.Errorf("without a message id: %v, header %v", err, nm.Header)
	}

	for _, bad := range []*mapping.Message{
		{Subject: "", Payload: []byte("{}")},
		{Subject: "zulip.x", Headers: []mapping.Header{{Key: "Zulip-Topic", Value: "two\r\nlines"}}},
	} {
		if _, err := natsMsg(bad, "id"); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("natsMsg(%+v) = %v, want ErrInvalidMessage", bad, err)
		}
	}
}
