package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/internal/retry"
)

// Client talks to one Zulip server as one bot. It is safe for concurrent
// use; a Queue built from it is not.
//
// The single-request methods (Register, GetEvents, DeleteQueue,
// GetMessages, ServerSettings) make one attempt and return a classified
// error (see IsTransient); Retry, Open/Queue.Next and CallOnEachEvent retry.
type Client struct {
	cfg      Config
	site     Site
	base     *url.URL
	hc       *http.Client
	clock    clockwork.Clock
	backoff  Backoff
	log      *slog.Logger
	ua       string
	types    []string // nil: all
	narrow   string   // list-of-pairs JSON, "" for none
	maxBody  int64
	reqTO    time.Duration
	longPoll atomic.Int64 // client-side GET /events timeout, as a time.Duration
	wrappers []func(http.RoundTripper) http.RoundTripper
}

// Option configures a Client.
type Option func(*Client) error

// WithHTTPClient makes the client send its requests with hc. Config's TLS
// settings (ZULIP_CERT*, ZULIP_ALLOW_INSECURE) cannot be applied to a
// caller's client, so setting both is an error. hc.Timeout should be zero:
// the client sets its own per-request deadlines.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("WithHTTPClient: nil client")
		}
		c.hc = hc
		return nil
	}
}

// WithTransport makes the client send its requests through rt, e.g. to
// instrument them. As with WithHTTPClient, Config's TLS settings cannot be
// combined with it.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) error {
		if rt == nil {
			return errors.New("WithTransport: nil transport")
		}
		c.hc = &http.Client{Transport: rt}
		return nil
	}
}

// WithTransportWrapper wraps the client's transport, whichever it is (the
// one built from Config, TLS settings included, or one given with
// WithTransport or WithHTTPClient), e.g. to add metrics or tracing. Several
// wrappers apply in order: the last one given is the outermost.
func WithTransportWrapper(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(c *Client) error {
		if wrap == nil {
			return errors.New("WithTransportWrapper: nil wrapper")
		}
		c.wrappers = append(c.wrappers, wrap)
		return nil
	}
}

// WithClock sets the clock of timeouts and backoff; tests pass a fake one.
func WithClock(clock clockwork.Clock) Option {
	return func(c *Client) error {
		if clock == nil {
			return errors.New("WithClock: nil clock")
		}
		c.clock = clock
		return nil
	}
}

// WithBackoff replaces the backoff policy built from Config.RetryBase and
// Config.RetryMax. A server's Retry-After still wins when it is longer.
func WithBackoff(b Backoff) Option {
	return func(c *Client) error {
		if b == nil {
			return errors.New("WithBackoff: nil policy")
		}
		c.backoff = b
		return nil
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithVersion sets the version in the User-Agent, "zulip-bridge/<version>".
// The default is the main module's version from the build info, or "dev".
func WithVersion(v string) Option {
	return func(c *Client) error {
		if v == "" || strings.ContainsAny(v, " \t\r\n") {
			return fmt.Errorf("WithVersion: %q is not a version", v)
		}
		c.ua = "zulip-bridge/" + v
		return nil
	}
}

// NewClient returns a client for cfg. It resolves and validates cfg (if the
// caller did not), loads the TLS material, and makes no request.
func NewClient(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	site, _ := ParseSite(cfg.Site) // checked by Validate
	types, _ := cfg.eventTypes()
	narrow, _ := normalizeNarrow(cfg.Narrow)
	c := &Client{
		cfg:     cfg,
		site:    site,
		base:    site.url(),
		clock:   clockwork.NewRealClock(),
		log:     slog.New(slog.DiscardHandler),
		ua:      "zulip-bridge/" + buildVersion(),
		types:   types,
		narrow:  narrow,
		maxBody: cfg.MaxResponseBytes,
		reqTO:   cfg.RequestTimeout,
	}
	c.backoff = ExponentialBackoff(cfg.RetryBase, cfg.RetryMax, nil)
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	tlsSettings := cfg.Cert != "" || cfg.CertBundle != "" || cfg.insecure()
	switch {
	case c.hc != nil && tlsSettings:
		return nil, errors.New("ZULIP_CERT, ZULIP_CERT_BUNDLE and ZULIP_ALLOW_INSECURE cannot be applied to a client given with WithHTTPClient or WithTransport: configure TLS on that client instead")
	case c.hc == nil:
		tr, err := newTransport(cfg)
		if err != nil {
			return nil, err
		}
		c.hc = &http.Client{Transport: tr}
	}
	for _, wrap := range c.wrappers {
		hc := *c.hc
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = wrap(base)
		c.hc = &hc
	}
	c.setServerLongPoll(0)
	if cfg.insecure() {
		c.log.Warn("TLS CERTIFICATE VERIFICATION IS DISABLED for the Zulip server (ZULIP_ALLOW_INSECURE or insecure in the zuliprc): "+
			"anyone on the network path can read the bot's API key and every event; use ZULIP_CERT_BUNDLE for a private CA instead",
			"site", c.site.String())
	}
	return c, nil
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newTransport(cfg Config) (*http.Transport, error) {
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return tr, nil
}

// Site returns the organization requests go to, parsed from ZULIP_SITE.
func (c *Client) Site() Site { return c.site }

// Email returns the bot's email.
func (c *Client) Email() string { return c.cfg.Email }

// setServerLongPoll sets the long-poll timeout from what the server
// reported (0: not reported), unless the configuration fixes it.
func (c *Client) setServerLongPoll(server time.Duration) {
	d := c.cfg.LongPollTimeout
	if d == 0 {
		d = max(server, defaultServerLongPoll) + longPollMargin
	}
	c.longPoll.Store(int64(d))
}

// LongPollTimeout returns the client-side timeout of a waiting GET /events.
func (c *Client) LongPollTimeout() time.Duration { return time.Duration(c.longPoll.Load()) }

// Retry calls fn until it returns nil or an error that is not transient
// (IsTransient), waiting between attempts as the backoff policy and the
// server's Retry-After say, and logging each failure. op names the
// operation in logs and errors. It returns fn's last error or ctx's.
func (c *Client) Retry(ctx context.Context, op string, fn func(context.Context) error) error {
	p := c.retryPolicy()
	p.OnRetry = func(f retry.Failure) {
		c.log.Warn("zulip request failed, retrying", "op", op, "attempt", f.Attempt, "retry_in", f.Wait, "error", f.Err)
	}
	err := retry.Do(ctx, p, fn)
	if _, stopped := errors.AsType[*retry.StopError](err); stopped {
		return fmt.Errorf("%s: %w", op, err)
	}
	return err
}

// retryPolicy is how the client retries a request: its backoff and clock,
// at least as long as the server asks (Retry-After), transient errors
// only.
func (c *Client) retryPolicy() retry.Policy {
	return retry.Policy{
		Backoff:   c.backoff,
		After:     serverWait,
		Clock:     c.clock,
		Permanent: func(err error) bool { return !IsTransient(err) },
	}
}

// request is one API call.
type request struct {
	method  string
	path    string // below /api/v1/
	query   url.Values
	form    url.Values
	timeout time.Duration
	noAuth  bool
}

// do sends r and returns the body of a 200 response. Any other outcome is a
// classified error: *APIError (or *RateLimitError), *TransportError,
// *ResponseTooLargeError, or the caller's context error.
func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	resp, err := c.send(ctx, r)
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	// Read through resp: each read is timed.
	b, err := io.ReadAll(io.LimitReader(resp, c.maxBody+1))
	if err != nil {
		return nil, resp.readError(err)
	}
	if int64(len(b)) > c.maxBody {
		return nil, &ResponseTooLargeError{Method: r.method, Endpoint: resp.endpoint, Limit: c.maxBody}
	}
	return b, nil
}

// response is the body of a 200 response, read as it arrives.
type response struct {
	c                *Client
	ctx, rctx        context.Context
	cancel           context.CancelCauseFunc
	timer            clockwork.Timer
	idle             time.Duration
	method, endpoint string
	body             io.ReadCloser
}

// send sends r and returns the response once its headers say 200; any
// other status is read and returned as an error. r.timeout bounds the wait
// for the headers (a long-poll's wait); after them, the body may take as
// long as it needs, as long as no read of it waits more than the client's
// request timeout for a byte.
func (c *Client) send(ctx context.Context, r request) (*response, error) {
	endpoint := "/api/v1/" + r.path
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + endpoint
	if u.RawPath != "" {
		// The site's path as it was escaped (an escaped slash stays one);
		// endpoint needs no escaping.
		u.RawPath = strings.TrimRight(u.RawPath, "/") + endpoint
	}
	u.RawQuery = r.query.Encode()

	rctx, cancel := context.WithCancelCause(ctx)
	var after atomic.Int64 // what the timer stands for: the headers' wait, then a read's
	after.Store(int64(r.timeout))
	timer := c.clock.AfterFunc(r.timeout, func() { cancel(&timeoutError{after: time.Duration(after.Load())}) })
	fail := func(err error) (*response, error) {
		timer.Stop()
		cancel(nil)
		return nil, err
	}

	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	req, err := http.NewRequestWithContext(rctx, r.method, u.String(), body)
	if err != nil {
		return fail(fmt.Errorf("zulip %s %s: %w", r.method, endpoint, err))
	}
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Accept", "application/json")
	if !r.noAuth {
		req.SetBasicAuth(c.cfg.Email, c.cfg.APIKey)
	}

	hr, err := c.hc.Do(req)
	if err != nil {
		return fail(c.transportError(ctx, rctx, r.method, endpoint, err))
	}
	after.Store(int64(c.reqTO))
	resp := &response{c: c, ctx: ctx, rctx: rctx, cancel: cancel, timer: timer, idle: c.reqTO,
		method: r.method, endpoint: endpoint, body: hr.Body}
	if hr.StatusCode != http.StatusOK {
		defer resp.Close()
		b, err := io.ReadAll(io.LimitReader(hr.Body, c.maxBody+1))
		if err != nil {
			return nil, resp.readError(err)
		}
		if int64(len(b)) > c.maxBody {
			return nil, &ResponseTooLargeError{Method: r.method, Endpoint: endpoint, Limit: c.maxBody}
		}
		return nil, c.apiError(r.method, endpoint, hr, b)
	}
	// The headers came in time; from here on, reads are timed one by one.
	timer.Stop()
	return resp, nil
}

// Read reads the body, giving up when no byte comes for the idle timeout.
func (r *response) Read(p []byte) (int, error) {
	r.timer.Reset(r.idle)
	n, err := r.body.Read(p)
	r.timer.Stop()
	return n, err
}

// readError classifies a failed read of the body.
func (r *response) readError(err error) error {
	return r.c.transportError(r.ctx, r.rctx, r.method, r.endpoint, err)
}

// Close releases the response; it may be called more than once, and from
// another goroutine than the reader's, to abandon a read in progress.
func (r *response) Close() {
	r.timer.Stop()
	r.cancel(nil)
	r.body.Close()
}

// transportError classifies a failed round trip: the caller's context
// ending is returned as such (not transient), the client's own deadline and
// network failures as *TransportError.
func (c *Client) transportError(ctx, rctx context.Context, method, endpoint string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("zulip %s %s: %w", method, endpoint, ctx.Err())
	}
	if cause := context.Cause(rctx); cause != nil {
		var te *timeoutError
		if errors.As(cause, &te) {
			err = te
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is in the message already
	}
	return &TransportError{Method: method, Endpoint: endpoint, Err: err}
}

// apiError builds the error of a non-200 response.
func (c *Client) apiError(method, endpoint string, resp *http.Response, body []byte) error {
	var eb struct {
		Msg        string          `json:"msg"`
		Code       string          `json:"code"`
		RetryAfter json.RawMessage `json:"retry-after"`
	}
	isJSON := json.Unmarshal(body, &eb) == nil
	e := &APIError{
		Method:   method,
		Endpoint: endpoint,
		Status:   resp.StatusCode,
		Code:     eb.Code,
		Msg:      c.redact(eb.Msg),
		Site:     c.site.String(),
		Email:    c.cfg.Email,
	}
	if !isJSON || e.Msg == "" {
		e.Msg = http.StatusText(resp.StatusCode)
	}
	if d, ok := parseSeconds(string(bytes.Trim(eb.RetryAfter, `"`))); ok {
		e.RetryAfter = d
	} else if d, ok := c.parseRetryAfterHeader(resp.Header.Get("Retry-After")); ok {
		e.RetryAfter = d
	}
	if resp.StatusCode == http.StatusTooManyRequests || e.Code == codeRateLimitHit {
		return &RateLimitError{RetryAfter: e.RetryAfter, Err: e}
	}
	return e
}

// redact keeps the API key out of text that came from the server.
func (c *Client) redact(s string) string {
	if k := c.cfg.APIKey; len(k) >= 4 {
		s = strings.ReplaceAll(s, k, "[redacted]")
	}
	return s
}

// parseSeconds parses a non-negative number of seconds, fractions allowed.
func parseSeconds(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 86400 || f != f {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// parseRetryAfterHeader accepts both forms of RFC 9110: seconds or a date.
func (c *Client) parseRetryAfterHeader(h string) (time.Duration, bool) {
	if d, ok := parseSeconds(h); ok {
		return d, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(c.clock.Now()), 0), true
	}
	return 0, false
}

// malformed wraps a decoding failure of a 200 response.
func malformed(method, path string, err error) error {
	return &MalformedResponseError{Method: method, Endpoint: "/api/v1/" + path, Err: err}
}

// MaxResponseBytes is the largest event (in a GET /events response) or
// other response body the client accepts (Config.MaxResponseBytes).
func (c *Client) MaxResponseBytes() int64 { return c.maxBody }
