package source

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Registration is the answer to POST /register: a new event queue and the
// initial state of what it was registered for.
type Registration struct {
	QueueID string
	// LastEventID is where reading the new queue starts (usually -1).
	LastEventID int64
	// MaxMessageID is the highest message id when the queue was made; zero
	// when message data was not fetched (no "message" event type).
	MaxMessageID int64
	FeatureLevel int
	ZulipVersion string
	// LongPollTimeout is event_queue_longpoll_timeout_seconds when the server
	// reported it (only if realm data was fetched); zero otherwise.
	LongPollTimeout time.Duration
	// Raw is the whole response body: the initial state.
	Raw json.RawMessage
}

// clientCapabilities asks for the current event formats, so that the events
// the bridge publishes are the documented ones: bulk delete_message events
// instead of one per message, stream typing events, user_settings instead
// of the legacy settings events, null for uncustomized stream settings.
const clientCapabilities = `{"notification_settings_null":true,"bulk_message_deletion":true,"stream_typing_notifications":true,"user_settings_object":true}`

// Register registers a new event queue with the configured event types,
// narrow, all_public_streams, queue lifespan and initial state options
// (fetch_event_types, include_subscribers). Messages come rendered as
// Config.ApplyMarkdown and Config.ClientGravatar say, the same as
// GetMessages returns them, so that backfilled messages look like live
// ones.
func (c *Client) Register(ctx context.Context) (*Registration, error) {
	const path = "register"
	form := url.Values{}
	if c.types != nil {
		b, _ := json.Marshal(c.types)
		form.Set("event_types", string(b))
	}
	if fetch, _ := c.cfg.fetchEventTypes(c.types); fetch != nil { // checked by Validate
		b, _ := json.Marshal(fetch)
		form.Set("fetch_event_types", string(b))
	}
	if c.cfg.IncludeSubscribers {
		form.Set("include_subscribers", "true")
	}
	if c.narrow != "" {
		form.Set("narrow", c.narrow)
	}
	if c.cfg.AllPublicStreams {
		form.Set("all_public_streams", "true")
	}
	if d := c.cfg.QueueLifespan; d > 0 {
		form.Set("queue_lifespan_secs", strconv.FormatInt(int64(d/time.Second), 10))
	}
	c.setRendering(form)
	form.Set("client_capabilities", clientCapabilities)
	body, err := c.do(ctx, request{method: http.MethodPost, path: path, form: form, timeout: c.reqTO})
	if err != nil {
		return nil, err
	}
	var r struct {
		Result       string   `json:"result"`
		QueueID      *string  `json:"queue_id"`
		LastEventID  *int64   `json:"last_event_id"`
		MaxMessageID int64    `json:"max_message_id"`
		FeatureLevel int      `json:"zulip_feature_level"`
		Version      string   `json:"zulip_version"`
		LongPoll     *float64 `json:"event_queue_longpoll_timeout_seconds"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, malformed(http.MethodPost, path, err)
	}
	switch {
	case r.Result != "success":
		return nil, malformed(http.MethodPost, path, fmt.Errorf("result %q, want success", r.Result))
	case r.QueueID == nil || *r.QueueID == "":
		return nil, malformed(http.MethodPost, path, errors.New("no queue_id"))
	case r.LastEventID == nil:
		return nil, malformed(http.MethodPost, path, errors.New("no last_event_id"))
	}
	reg := &Registration{
		QueueID:      *r.QueueID,
		LastEventID:  *r.LastEventID,
		MaxMessageID: r.MaxMessageID,
		FeatureLevel: r.FeatureLevel,
		ZulipVersion: r.Version,
		Raw:          body,
	}
	if r.LongPoll != nil && *r.LongPoll > 0 && *r.LongPoll < 3600 {
		reg.LongPollTimeout = time.Duration(*r.LongPoll * float64(time.Second))
		c.setServerLongPoll(reg.LongPollTimeout)
	}
	return reg, nil
}

// setRendering sets apply_markdown and client_gravatar as configured, both
// always sent (their defaults differ between POST /register and
// GET /messages), so that a backfilled message is rendered exactly as the
// live message event of the queue would have it.
func (c *Client) setRendering(v url.Values) {
	v.Set("apply_markdown", strconv.FormatBool(c.cfg.ApplyMarkdown))
	v.Set("client_gravatar", strconv.FormatBool(c.cfg.ClientGravatar))
}

// GetEvents fetches the events of queueID after lastEventID, which also
// acknowledges every event up to lastEventID. Unless dontBlock, it waits
// until there is at least one event (the server sends a heartbeat when
// nothing happens), for at most LongPollTimeout.
//
// It holds the whole response in memory; Queue reads it as it arrives
// instead. An event larger than Config.MaxResponseBytes comes Oversized,
// without its bytes.
func (c *Client) GetEvents(ctx context.Context, queueID string, lastEventID int64, dontBlock bool) ([]Event, error) {
	s, err := c.openEvents(ctx, queueID, lastEventID, dontBlock)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []Event
	for {
		ev, err := s.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
}

// events is a GET /events response being read.
type events struct {
	resp   *response
	stream *eventStream
}

// openEvents sends GET /events and returns the response to read its events
// from, once the server started answering 200.
func (c *Client) openEvents(ctx context.Context, queueID string, lastEventID int64, dontBlock bool) (*events, error) {
	q := url.Values{}
	q.Set("queue_id", queueID)
	q.Set("last_event_id", strconv.FormatInt(lastEventID, 10))
	timeout := c.LongPollTimeout()
	if dontBlock {
		q.Set("dont_block", "true")
		timeout = c.reqTO
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "events", query: q, timeout: timeout})
	if err != nil {
		return nil, err
	}
	return &events{resp: resp, stream: newEventStream(resp, lastEventID, int(min(c.maxBody, math.MaxInt32)))}, nil
}

// next returns the next event, io.EOF after the last, or a classified
// error: *TransportError when the body failed, *MalformedResponseError
// when it is not a valid response, or the caller's context error.
func (e *events) next() (Event, error) {
	ev, err := e.stream.next()
	if err == nil || errors.Is(err, io.EOF) {
		return ev, err
	}
	if re, ok := errors.AsType[*readError](err); ok {
		return Event{}, e.resp.readError(re.err)
	}
	return Event{}, malformed(http.MethodGet, "events", err)
}

// Close releases the response.
func (e *events) Close() { e.resp.Close() }

// DeleteQueue deletes an event queue. Deleting a queue that is already gone
// returns an error matching ErrQueueExpired.
func (c *Client) DeleteQueue(ctx context.Context, queueID string) error {
	form := url.Values{"queue_id": {queueID}}
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "events", form: form, timeout: c.reqTO})
	return err
}

// Message is one Zulip message.
type Message struct {
	ID int64
	// Raw is the message object exactly as the server sent it.
	Raw json.RawMessage
	// Flags are the bot's flags on the message (read, mentioned, ...).
	Flags []string
	// Skipped is as Event.Skipped: the long values of Raw that the
	// response's scan stepped over (members other than id and flags).
	Skipped []Span
}

// GetMessages returns up to numAfter messages with ids above anchor, oldest
// first, in the configured narrow, rendered as Register asks live message
// events to be (apply_markdown, client_gravatar): what a lost queue missed
// when anchor is the highest message id handled. foundNewest reports that no newer message
// exists. An anchor of 0 starts at the oldest message.
func (c *Client) GetMessages(ctx context.Context, anchor int64, numAfter int) (msgs []Message, foundNewest bool, err error) {
	const path = "messages"
	if anchor < 0 || numAfter < 1 {
		return nil, false, fmt.Errorf("zulip GET /api/v1/messages: anchor %d, num_after %d: want anchor >= 0 and num_after >= 1", anchor, numAfter)
	}
	q := url.Values{}
	q.Set("anchor", strconv.FormatInt(anchor, 10))
	q.Set("num_before", "0")
	q.Set("num_after", strconv.Itoa(numAfter))
	q.Set("include_anchor", "false")
	c.setRendering(q)
	if c.narrow != "" {
		q.Set("narrow", c.narrow)
	}
	// The page is decoded as it arrives, each message copied out once,
	// not read whole first; the limit is the whole body's, as for do.
	resp, err := c.send(ctx, request{method: http.MethodGet, path: path, query: q, timeout: c.reqTO})
	if err != nil {
		return nil, false, err
	}
	defer resp.Close()
	body := &io.LimitedReader{R: resp, N: c.maxBody + 1}
	msgs, foundNewest, err = readMessages(body, anchor, int(min(c.maxBody, math.MaxInt32)))
	switch re, isRead := errors.AsType[*readError](err); {
	case body.N <= 0:
		return nil, false, &ResponseTooLargeError{Method: http.MethodGet, Endpoint: resp.endpoint, Limit: c.maxBody}
	case isRead:
		return nil, false, resp.readError(re.err)
	case err != nil:
		return nil, false, malformed(http.MethodGet, path, err)
	}
	return msgs, foundNewest, nil
}

// ServerSettings is what GET /server_settings tells about a server.
type ServerSettings struct {
	ZulipVersion string
	FeatureLevel int
	MergeBase    string
	RealmURL     string
	RealmName    string
	Raw          json.RawMessage
}

// ServerSettings fetches the server's version and realm, without
// authentication: `bridge check` uses it to tell "cannot reach the server"
// from "the server refuses the credentials".
func (c *Client) ServerSettings(ctx context.Context) (*ServerSettings, error) {
	const path = "server_settings"
	body, err := c.do(ctx, request{method: http.MethodGet, path: path, timeout: c.reqTO, noAuth: true})
	if err != nil {
		return nil, err
	}
	var r struct {
		Result       string `json:"result"`
		ZulipVersion string `json:"zulip_version"`
		FeatureLevel int    `json:"zulip_feature_level"`
		MergeBase    string `json:"zulip_merge_base"`
		RealmURL     string `json:"realm_url"`
		RealmURI     string `json:"realm_uri"`
		RealmName    string `json:"realm_name"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, malformed(http.MethodGet, path, err)
	}
	if r.Result != "success" {
		return nil, malformed(http.MethodGet, path, fmt.Errorf("result %q, want success", r.Result))
	}
	return &ServerSettings{
		ZulipVersion: r.ZulipVersion,
		FeatureLevel: r.FeatureLevel,
		MergeBase:    r.MergeBase,
		RealmURL:     cmp.Or(r.RealmURL, r.RealmURI), // realm_uri before feature level 257
		RealmName:    r.RealmName,
		Raw:          body,
	}, nil
}
