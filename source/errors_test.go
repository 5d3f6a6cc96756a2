package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestErrorClassification(t *testing.T) {
	api := func(status int, code string) *APIError {
		return &APIError{Method: "GET", Endpoint: "/api/v1/events", Status: status, Code: code, Msg: "m",
			Site: "https://chat.example.com", Email: "bot@example.com"}
	}
	tests := []struct {
		name                      string
		err                       error
		transient, expired, unaut bool
	}{
		{"500", api(500, "BAD_REQUEST"), true, false, false},
		{"502 html", api(502, ""), true, false, false},
		{"408", api(408, ""), true, false, false},
		{"429", &RateLimitError{RetryAfter: time.Second, Err: api(429, codeRateLimitHit)}, true, false, false},
		{"expired", api(400, codeBadEventQueueID), false, true, false},
		{"expired, wrapped", fmt.Errorf("get: %w", api(400, codeBadEventQueueID)), false, true, false},
		{"bad request", api(400, "BAD_REQUEST"), false, false, false},
		{"401", api(401, codeUnauthorized), false, false, true},
		{"401 without code", api(401, ""), false, false, true},
		{"old server 403", api(403, ""), false, false, true},
		{"403 other code", api(403, "BAD_REQUEST"), false, false, false},
		{"invalid key", api(400, codeInvalidAPIKey), false, false, true},
		{"user deactivated", api(401, codeUserDeactivated), false, false, true},
		{"realm deactivated, old status", api(403, codeRealmDeactivated), false, false, true},
		{"transport", &TransportError{Method: "GET", Endpoint: "/x", Err: io.ErrUnexpectedEOF}, true, false, false},
		{"malformed", &MalformedResponseError{Method: "GET", Endpoint: "/x", Err: errors.New("eof")}, true, false, false},
		{"too large", &ResponseTooLargeError{Method: "GET", Endpoint: "/x", Limit: 10}, false, false, false},
		{"canceled", fmt.Errorf("zulip GET /x: %w", context.Canceled), false, false, false},
		{"nil", nil, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsTransient(tt.err); got != tt.transient {
				t.Errorf("IsTransient = %v, want %v", got, tt.transient)
			}
			if got := errors.Is(tt.err, ErrQueueExpired); got != tt.expired {
				t.Errorf("Is(ErrQueueExpired) = %v, want %v", got, tt.expired)
			}
			if got := errors.Is(tt.err, ErrUnauthorized); got != tt.unaut {
				t.Errorf("Is(ErrUnauthorized) = %v, want %v", got, tt.unaut)
			}
		})
	}
	if !errors.Is(&ResponseTooLargeError{}, ErrResponseTooLarge) {
		t.Error("ResponseTooLargeError does not match ErrResponseTooLarge")
	}
}

func TestAPIErrorMessages(t *testing.T) {
	base := APIError{Method: "POST", Endpoint: "/api/v1/register", Site: "https://chat.example.com", Email: "bot@example.com"}
	tests := []struct {
		status int
		code   string
		want   []string
	}{
		{401, codeUnauthorized, []string{"HTTP 401 UNAUTHORIZED", "https://chat.example.com rejected the credentials of bot@example.com", "ZULIP_API_KEY"}},
		{401, codeUserDeactivated, []string{"the account bot@example.com on https://chat.example.com is deactivated"}},
		{401, codeRealmDeactivated, []string{"the organization https://chat.example.com is deactivated"}},
		{400, codeBadEventQueueID, []string{"zulip POST /api/v1/register: HTTP 400 BAD_EVENT_QUEUE_ID: boom"}},
	}
	for _, tt := range tests {
		e := base
		e.Status, e.Code, e.Msg = tt.status, tt.code, "boom"
		for _, w := range tt.want {
			if !strings.Contains(e.Error(), w) {
				t.Errorf("%d %s: %q does not contain %q", tt.status, tt.code, e.Error(), w)
			}
		}
	}
	tl := (&ResponseTooLargeError{Method: "GET", Endpoint: "/api/v1/events", Limit: 1024}).Error()
	if !strings.Contains(tl, "1024 bytes") || !strings.Contains(tl, "BRIDGE_ZULIP_MAX_RESPONSE_BYTES") {
		t.Errorf("too-large error %q does not name the limit and its variable", tl)
	}
}

// TestAPIErrorFromResponse covers the decoding of error bodies: JSON or
// not, retry-after in the body or the header, and the key kept out.
func TestAPIErrorFromResponse(t *testing.T) {
	c, err := NewClient(validConfig(), WithClock(clockwork.NewFakeClockAt(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))))
	if err != nil {
		t.Fatal(err)
	}
	now := c.clock.Now()
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantType   string
		wantCode   string
		wantMsg    string
		wantAfter  time.Duration
		notInError string
	}{
		{name: "rate limit body", status: 429, body: `{"result":"error","code":"RATE_LIMIT_HIT","msg":"API usage exceeded rate limit","retry-after":2.5}`,
			header: http.Header{"Retry-After": {"3"}}, wantType: "ratelimit", wantCode: codeRateLimitHit, wantMsg: "API usage exceeded rate limit", wantAfter: 2500 * time.Millisecond},
		{name: "rate limit header only", status: 429, body: `{"result":"error","msg":"API usage exceeded rate limit"}`,
			header: http.Header{"Retry-After": {"7"}}, wantType: "ratelimit", wantMsg: "API usage exceeded rate limit", wantAfter: 7 * time.Second},
		{name: "503 html with date", status: 503, body: `<html>503</html>`,
			header: http.Header{"Retry-After": {now.Add(10 * time.Second).UTC().Format(http.TimeFormat)}}, wantType: "api", wantMsg: "Service Unavailable", wantAfter: 10 * time.Second},
		{name: "key echoed by a server", status: 400, body: `{"result":"error","code":"BAD_REQUEST","msg":"bad key ` + testKey + `"}`,
			wantType: "api", wantCode: "BAD_REQUEST", wantMsg: "bad key [redacted]", notInError: testKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: tt.header}
			if resp.Header == nil {
				resp.Header = http.Header{}
			}
			err := c.apiError("GET", "/api/v1/events", resp, []byte(tt.body))
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("%T is not an *APIError", err)
			}
			var rl *RateLimitError
			if isRL := errors.As(err, &rl); isRL != (tt.wantType == "ratelimit") {
				t.Fatalf("rate limit error: %v, want %v", isRL, tt.wantType == "ratelimit")
			}
			if ae.Code != tt.wantCode || ae.Msg != tt.wantMsg {
				t.Errorf("code, msg = %q, %q; want %q, %q", ae.Code, ae.Msg, tt.wantCode, tt.wantMsg)
			}
			got, _ := retryAfter(err)
			if got != tt.wantAfter {
				t.Errorf("retry after %v, want %v", got, tt.wantAfter)
			}
			if tt.notInError != "" && strings.Contains(err.Error(), tt.notInError) {
				t.Errorf("error shows %q: %v", tt.notInError, err)
			}
		})
	}
}
