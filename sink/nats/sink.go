package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/internal/retry"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// Option adjusts New and Connect. An option that cannot apply its value
// makes them fail.
type Option func(*options) error

type options struct {
	logger      *slog.Logger
	connectOpts []nats.Option
}

// WithLogger sets the logger for connection state changes (connected,
// disconnected, reconnected, closed). Nothing is logged per message. The
// default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nats sink: WithLogger(nil): pass a logger, or no option to discard")
		}
		o.logger = l
		return nil
	}
}

// WithConnectOptions appends nats.go options after the sink's own, e.g.
// nats.InProcessServer for an embedded server, in which case Config.URL may
// be empty.
func WithConnectOptions(opts ...nats.Option) Option {
	return func(o *options) error {
		for i, opt := range opts {
			if opt == nil {
				return fmt.Errorf("nats sink: WithConnectOptions: option %d is nil", i+1)
			}
		}
		o.connectOpts = append(o.connectOpts, opts...)
		return nil
	}
}

func applyOptions(opts []Option) (options, error) {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// New validates cfg, connects to NATS and returns the sink: a *JetStream
// (which also implements sink.Recoverer) or, with cfg.JetStream false, a
// *Core. Both implement sink.ReadyChecker. cfg.SubjectPrefix is the first
// token of every subject; a stream New creates captures prefix + ".>".
//
// New fails if the first connection fails: with ErrUnreachable when no
// server answered, another error when one refused (credentials, TLS); the
// error names the URLs, credentials redacted. The caller decides whether
// to retry. After that the connection
// reconnects forever with backoff. ctx bounds the first connection.
func New(ctx context.Context, cfg Config, opts ...Option) (sink.Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if p := cfg.SubjectPrefix; strings.ContainsAny(p, " \t\r\n*>") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") {
		return nil, fmt.Errorf("nats sink: subject prefix %q must be a subject without wildcards", p)
	}
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, cfg, o)
	if err != nil {
		return nil, err
	}
	if !*cfg.JetStream {
		c.log.Warn("core NATS (BRIDGE_NATS_JETSTREAM=false) is AT-MOST-ONCE: a message is lost for every subscriber not connected when it is sent, and a retried batch may reach a subscriber twice; use JetStream when the events matter",
			"url", cfg.RedactedURL())
		return &Core{conn: c}, nil
	}
	js, err := newJetStream(ctx, c, cfg, cfg.SubjectPrefix)
	if err != nil {
		c.nc.Close()
		return nil, err
	}
	return js, nil
}

// Connect opens a NATS connection with the same URLs, credentials, TLS and
// reconnect policy as the sink, for components beside it that need their
// own connection, such as the checkpoint store's key-value bucket. The
// caller closes it.
func Connect(ctx context.Context, cfg Config, opts ...Option) (*nats.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	c, err := connect(ctx, cfg.withDefaults(), o)
	if err != nil {
		return nil, err
	}
	return c.nc, nil
}

// conn is what both sinks share: the connection, its state and closing.
type conn struct {
	nc  *nats.Conn
	log *slog.Logger

	mu     sync.Mutex
	closed bool
}

// connect dials NATS with the bridge's policy: reconnect forever with
// capped exponential backoff, and no reconnect buffer, so that a message
// is only ever written to a live connection and nothing written before a
// disconnect is replayed behind the sink's back after it (which could
// store a later message of a subject before an earlier one).
func connect(ctx context.Context, cfg Config, o options) (*conn, error) {
	urls, err := cfg.urls()
	if err != nil {
		return nil, err
	}
	if len(urls) == 0 && len(o.connectOpts) == 0 {
		return nil, fmt.Errorf("%w: set BRIDGE_NATS_URL or pass an in-process connection", ErrNoURL)
	}
	c := &conn{log: o.logger.With("component", "nats")}
	nopts := []nats.Option{
		nats.Name("zulip-bridge"),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(nats.ReconnectDelayHandler(backoff)),
		nats.ReconnectBufSize(-1),
		nats.PingInterval(20 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ConnectHandler(func(nc *nats.Conn) {
			c.log.Info("nats connected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				c.log.Warn("nats disconnected", "error", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			c.log.Info("nats connection closed")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			c.log.Warn("nats asynchronous error", "error", err)
		}),
	}
	if deadline, ok := ctx.Deadline(); ok {
		nopts = append(nopts, nats.Timeout(max(time.Until(deadline), time.Millisecond)))
	}
	switch {
	case cfg.Creds != "":
		nopts = append(nopts, nats.UserCredentials(cfg.Creds))
	case cfg.NKey != "":
		opt, err := nats.NkeyOptionFromSeed(cfg.NKey)
		if err != nil { // checked by Validate; the file may have changed since
			return nil, &envconfig.Error{Key: "BRIDGE_NATS_NKEY", Problem: fmt.Sprintf("%s: %v", cfg.NKey, err)}
		}
		nopts = append(nopts, opt)
	case cfg.User != "":
		nopts = append(nopts, nats.UserInfo(cfg.User, cfg.password()))
	case cfg.token() != "":
		nopts = append(nopts, nats.Token(cfg.token()))
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		nopts = append(nopts, nats.Secure(tlsCfg))
	}
	nopts = append(nopts, o.connectOpts...)

	type result struct {
		nc  *nats.Conn
		err error
	}
	// nats.Connect takes no context; run it aside so that ctx bounds New.
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(strings.Join(urls, ","), nopts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, connectErr(cfg, r.err)
		}
		c.nc = r.nc
		return c, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, connectErr(cfg, ctx.Err())
	}
}

// connectErr says which servers (credentials redacted) and which variable
// a failed connection was for, and marks with ErrUnreachable what another
// attempt may cure.
func connectErr(cfg Config, err error) error {
	where := cfg.RedactedURL()
	if where == "" {
		where = "the in-process server"
	} else {
		where += " (BRIDGE_NATS_URL)"
	}
	if errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w %s: %w", ErrUnreachable, where, err)
	}
	return fmt.Errorf("nats sink: connect to %s: %w", where, err)
}

// backoff is the delay before another round of reconnect attempts:
// exponential from 100ms, capped at 5s, with up to 20% jitter so that many
// bridges do not reconnect in step.
var backoff = retry.Jittered(100*time.Millisecond, 5*time.Second, 0.2, nil)

// ready reports whether a message could be sent right now.
func (c *conn) ready() error {
	switch st := c.nc.Status(); st {
	case nats.CONNECTED:
		return nil
	case nats.CLOSED:
		return ErrClosed
	default:
		return fmt.Errorf("%w (%s)", ErrNotConnected, strings.ToLower(st.String()))
	}
}

// Ready reports whether the connection to NATS is up.
func (c *conn) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.ready()
}

// checkPublish is what Publish checks before sending anything.
func (c *conn) checkPublish(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("nats sink: publish: %w", err)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := c.ready(); err != nil {
		return fmt.Errorf("nats sink: publish: %w", err)
	}
	return nil
}

// close flushes what the connection holds and closes it; wait, if not
// nil, is called first to let in-flight work finish within ctx.
func (c *conn) close(ctx context.Context, wait func(context.Context) error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	defer c.nc.Close()
	var errs []error
	if wait != nil {
		if err := wait(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if c.nc.Status() == nats.CONNECTED {
		fctx, cancel := ensureDeadline(ctx)
		defer cancel()
		if err := c.nc.FlushWithContext(fctx); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nats sink: close: %w", err)
	}
	return nil
}

// defaultFlushTimeout bounds a flush when the caller's context has no
// deadline: nats.go requires one, and a flush that takes this long means the
// connection is gone.
const defaultFlushTimeout = 30 * time.Second

func ensureDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultFlushTimeout)
}

// sendErr explains a failed write: with the reconnect buffer disabled,
// nats.go reports a dropped connection as a full buffer.
func sendErr(err error) error {
	if errors.Is(err, nats.ErrReconnectBufExceeded) {
		return fmt.Errorf("%w: connection lost", ErrNotConnected)
	}
	return err
}

// natsMsg turns a mapping.Message into a NATS message. msgID, when not
// empty, becomes Nats-Msg-Id.
func natsMsg(m *mapping.Message, msgID string) (*nats.Msg, error) {
	var b msgBuf
	if err := b.fill(m, msgID); err != nil {
		return nil, err
	}
	return &b.msg, nil
}

// msgBuf is a NATS message with the header map and the backing array of
// its values, kept for reuse: the header map is the largest allocation of
// the per-message hot path. A msgBuf goes back to msgBufs only once
// nothing can read it any more: after a synchronous PublishMsg returned,
// or after JetStream acknowledged it (nats.go then holds it no longer,
// and no retry can send it again).
type msgBuf struct {
	msg    nats.Msg
	values []string
}

var msgBufs = sync.Pool{New: func() any { return new(msgBuf) }}

func getMsgBuf() *msgBuf { return msgBufs.Get().(*msgBuf) }

// putMsgBuf returns b to msgBufs. It drops the payload; the header
// values stay until fill clears them (clearing the map twice showed in the
// profile), so a pooled msgBuf holds a message's header strings until the
// pool drops it or it is used again.
func putMsgBuf(b *msgBuf) {
	b.msg = nats.Msg{Header: b.msg.Header}
	msgBufs.Put(b)
}

// fill makes b.msg the NATS message of m, as natsMsg describes.
func (b *msgBuf) fill(m *mapping.Message, msgID string) error {
	if m.Subject == "" {
		return fmt.Errorf("%w: empty subject (dedup key %q)", ErrInvalidMessage, m.DedupKey)
	}
	h := b.msg.Header
	if h == nil {
		h = make(nats.Header, len(m.Headers)+1)
	} else {
		clear(h)
	}
	// One backing array for all values: a header is almost always
	// single-valued, and this is the per-message hot path.
	if cap(b.values) < len(m.Headers)+1 {
		b.values = make([]string, len(m.Headers)+1)
	}
	values := b.values[:len(m.Headers)+1]
	for i, kv := range m.Headers {
		// nats.go rejects bad keys itself but would quietly turn a line
		// break in a value into a space: refuse rather than alter.
		if strings.ContainsAny(kv.Value, "\r\n") {
			return fmt.Errorf("%w: header %q on %s has a line break", ErrInvalidMessage, kv.Key, m.Subject)
		}
		values[i] = kv.Value
		if prev, ok := h[kv.Key]; ok {
			h[kv.Key] = append(prev[:len(prev):len(prev)], kv.Value)
		} else {
			h[kv.Key] = values[i : i+1 : i+1]
		}
	}
	if msgID != "" {
		values[len(m.Headers)] = msgID
		h[jetstream.MsgIDHeader] = values[len(m.Headers):]
	}
	b.msg = nats.Msg{Subject: m.Subject, Header: h, Data: m.Payload}
	return nil
}

// headroom is what MaxMessageBytes keeps back from the server's
// max_payload for the headers added after the caller's check: Nats-Msg-Id,
// traceparent and tracestate, and the NATS/1.0 header framing.
const headroom = 1024

// MaxMessageBytes is the server's max_payload (announced when connecting)
// less headroom (sink.Limiter).
func (c *conn) MaxMessageBytes() int { return int(c.nc.MaxPayload()) - headroom }
