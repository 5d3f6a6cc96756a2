package source_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/source"
)

// A GET /messages page is decoded as it arrives; these hold it to what
// reading it whole gave: the limit is the whole body's, a body that is not
// a page is malformed, and a body that stops coming times out.

const messagesPage = `{"result":"success","found_newest":true,"messages":[` +
	`{"id":5,"flags":["read"],"type":"stream","stream_id":1,"display_recipient":"Denmark","subject":"a","content":"<p>one</p>"},` +
	`{"id":6,"flags":[],"type":"stream","stream_id":1,"display_recipient":"Denmark","subject":"a","content":"<p>two</p>"}]}`

func TestGetMessagesPage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		limit     int64
		want      error // nil: both messages, unless malformed
		malformed bool
	}{
		{"whole", messagesPage, int64(len(messagesPage)), nil, false},
		{"over the limit", messagesPage, int64(len(messagesPage)) - 1, source.ErrResponseTooLarge, false},
		{"over the limit by far", messagesPage + strings.Repeat(" ", 1<<20), 4096, source.ErrResponseTooLarge, false},
		{"not a page", `{"result":"success","messages":{}}`, 1 << 20, nil, true},
		{"truncated", messagesPage[:len(messagesPage)-3], 1 << 20, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, err := source.NewClient(source.Config{Site: srv.URL, Email: "bot@example.com", APIKey: "k", MaxResponseBytes: tc.limit}, source.WithVersion("test"))
			if err != nil {
				t.Fatal(err)
			}
			msgs, newest, err := c.GetMessages(context.Background(), 4, 10)
			if tc.malformed {
				var me *source.MalformedResponseError
				if !errors.As(err, &me) {
					t.Fatalf("GetMessages: %v, want a malformed response", err)
				}
				return
			}
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("GetMessages: %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil || !newest || len(msgs) != 2 || msgs[0].ID != 5 || msgs[1].ID != 6 || len(msgs[0].Flags) != 1 {
				t.Fatalf("GetMessages: %+v, %v, %v", msgs, newest, err)
			}
		})
	}
}

// TestBodyStalls: once the headers came, a body that stops coming fails
// after the request timeout, without waiting for the caller's context:
// a GET /messages page (decoded as it arrives) and a response read whole
// (GET /server_settings).
func TestBodyStalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, c *source.Client) error
	}{
		{"messages", func(ctx context.Context, c *source.Client) error {
			_, _, err := c.GetMessages(ctx, 0, 10)
			return err
		}},
		{"server_settings", func(ctx context.Context, c *source.Client) error {
			_, err := c.ServerSettings(ctx)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(messagesPage[:40]))
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			defer srv.Close()
			defer close(release)
			fc := clockwork.NewFakeClock()
			headers := make(chan struct{}, 1)
			c, err := source.NewClient(source.Config{Site: srv.URL, Email: "bot@example.com", APIKey: "k", RequestTimeout: 10 * time.Second},
				source.WithVersion("test"), source.WithClock(fc),
				source.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper {
					return roundTripFunc(func(r *http.Request) (*http.Response, error) {
						resp, err := rt.RoundTrip(r)
						headers <- struct{}{}
						return resp, err
					})
				}))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tc.call(ctx, c) }()
			<-headers
			// The header wait's timer is stopped before the body is
			// read: the one timer left is the read's.
			if err := fc.BlockUntilContext(ctx, 1); err != nil {
				t.Fatalf("no read timer: %v", err)
			}
			fc.Advance(10 * time.Second)
			err = <-done
			var te *source.TransportError
			if !errors.As(err, &te) || ctx.Err() != nil {
				t.Fatalf("%v, want a transport error before the context's end", err)
			}
		})
	}
}
