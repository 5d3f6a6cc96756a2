package zuliptest

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Bot is an API identity the simulator accepts: HTTP Basic auth with Email
// as the user name and APIKey as the password, as every Zulip client sends.
type Bot struct {
	Email  string
	APIKey string
}

// DefaultBot is the bot a Server accepts when Config.Bots is empty. Its key
// has the shape of a real Zulip API key (32 alphanumerics). It is a
// published test credential, never a secret.
var DefaultBot = Bot{Email: "bridge-bot@zulip.example.com", APIKey: "ZulipSimulatorBridgeBotApiKey001"}

// Defaults of Config's zero fields.
const (
	DefaultHeartbeatInterval = 50 * time.Second
	DefaultQueueTimeout      = 10 * time.Minute
	DefaultMaxQueueLifespan  = 7 * 24 * time.Hour
	DefaultRateWindow        = 60 * time.Second
	DefaultLongpollTimeout   = 90 * time.Second
	DefaultZulipVersion      = "10.0"
	DefaultFeatureLevel      = 300
	DefaultMergeBase         = "10.0"
)

// Config configures a Server. The zero value is a working server: one
// default bot, the default realm, the real clock, upstream's timings and no
// rate limit.
type Config struct {
	// Bots are the accepted credentials; default []Bot{DefaultBot}. Bots
	// missing from Realm.Users are added to it as bot users.
	Bots []Bot
	// Clock drives heartbeats, queue expiry, rate-limit windows, injected
	// latency and the traffic generator; default the real clock. Tests
	// pass a clockwork.NewFakeClock().
	Clock clockwork.Clock
	// HeartbeatInterval is how long a GET /events waits with nothing to
	// return before the server adds a heartbeat event, which consumes an
	// event id (upstream: 45-55 s); default 50s.
	HeartbeatInterval time.Duration
	// QueueTimeout is the idle lifespan of a queue registered without
	// queue_lifespan_secs (upstream: 10 minutes); default 10m.
	QueueTimeout time.Duration
	// MaxQueueLifespan caps queue_lifespan_secs (upstream: 7 days);
	// default 7 days.
	MaxQueueLifespan time.Duration
	// RateLimit is how many authenticated requests one bot may make per
	// RateWindow before getting 429 RATE_LIMIT_HIT (upstream: 200 per
	// 60 s); 0 means unlimited, the default. X-RateLimit-* headers are
	// sent either way.
	RateLimit int
	// RateWindow is the sliding window of RateLimit; default 60s.
	RateWindow time.Duration
	// LongpollTimeout is reported as event_queue_longpoll_timeout_seconds;
	// default 90s.
	LongpollTimeout time.Duration
	// ZulipVersion is reported as zulip_version; default "10.0".
	ZulipVersion string
	// FeatureLevel is reported as zulip_feature_level; default 300.
	FeatureLevel int
	// MergeBase is reported as zulip_merge_base; default "10.0".
	MergeBase string
	// Realm holds the users, streams and emoji; a realm with neither
	// users nor streams means DefaultRealm().
	Realm Realm
	// Logger receives one debug line per request and the server's notable
	// decisions (queue expiry, faults); default discards everything. API
	// keys are never logged.
	Logger *slog.Logger
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	for i, b := range c.Bots {
		if !strings.Contains(b.Email, "@") {
			return fmt.Errorf("zuliptest: Config.Bots[%d].Email %q is not an email address (example: %q)", i, b.Email, DefaultBot.Email)
		}
		if b.APIKey == "" || strings.ContainsAny(b.APIKey, ": \t\r\n") {
			return fmt.Errorf("zuliptest: Config.Bots[%d].APIKey for %s must be non-empty without ':' or spaces (example: 32 letters and digits)", i, b.Email)
		}
	}
	for name, d := range map[string]time.Duration{
		"HeartbeatInterval": c.HeartbeatInterval, "QueueTimeout": c.QueueTimeout,
		"MaxQueueLifespan": c.MaxQueueLifespan, "RateWindow": c.RateWindow, "LongpollTimeout": c.LongpollTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("zuliptest: Config.%s is %v; it must be positive, or zero for the default (example: 50s)", name, d)
		}
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("zuliptest: Config.RateLimit is %d; it must be >= 0, 0 meaning unlimited (example: 200)", c.RateLimit)
	}
	if c.FeatureLevel < 0 {
		return fmt.Errorf("zuliptest: Config.FeatureLevel is %d; it must be >= 0 (example: 300)", c.FeatureLevel)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if len(c.Bots) == 0 {
		c.Bots = []Bot{DefaultBot}
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()
	}
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.QueueTimeout = cmp.Or(c.QueueTimeout, DefaultQueueTimeout)
	c.MaxQueueLifespan = cmp.Or(c.MaxQueueLifespan, DefaultMaxQueueLifespan)
	c.RateWindow = cmp.Or(c.RateWindow, DefaultRateWindow)
	c.LongpollTimeout = cmp.Or(c.LongpollTimeout, DefaultLongpollTimeout)
	c.ZulipVersion = cmp.Or(c.ZulipVersion, DefaultZulipVersion)
	c.FeatureLevel = cmp.Or(c.FeatureLevel, DefaultFeatureLevel)
	c.MergeBase = cmp.Or(c.MergeBase, DefaultMergeBase)
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// Server is a Zulip-compatible HTTP server. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port" without a trailing
	// slash; empty until the server is started.
	URL string

	cfg     Config
	clock   clockwork.Clock
	log     *slog.Logger
	realm   *realmIndex
	handler http.Handler
	ts      *httptest.Server

	// closing is closed by Close; waiting long-polls abort on it.
	closing   chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	queues    map[string]*queue
	histories map[string]*history
	messages  messageStore
	huddles   map[string]int64
	rate      map[string][]time.Time
	faults    faultState
	// crashed is closed by Crash (and replaced): a GET /events response
	// streaming events taken before the crash drops its connection.
	crashed chan struct{}
	pauses  []*Pause // armed by PauseEvents
}

// NewServer starts a Server on 127.0.0.1 with a random port, like
// httptest.NewServer. It panics if cfg is invalid: tests want to fail at
// once on a mistyped configuration.
func NewServer(cfg Config) *Server {
	s := NewUnstartedServer(cfg)
	s.Start()
	return s
}

// NewUnstartedServer returns a Server that is not listening yet: call
// Start or StartListener, or mount Handler in a server of your own.
func NewUnstartedServer(cfg Config) *Server {
	s, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return s
}

// New is NewUnstartedServer returning an error instead of panicking, for
// programs (cmd/zulipsim) that take their configuration from users.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	realm, err := newRealmIndex(cfg.Realm, cfg.Bots)
	if err != nil {
		return nil, fmt.Errorf("zuliptest: Config.Realm: %w", err)
	}
	s := &Server{
		URL:       realm.URL,
		cfg:       cfg,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		realm:     realm,
		closing:   make(chan struct{}),
		queues:    map[string]*queue{},
		histories: map[string]*history{},
		huddles:   map[string]int64{},
		rate:      map[string][]time.Time{},
		crashed:   make(chan struct{}),
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler, serving /api/v1/.
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on 127.0.0.1 with a random port.
func (s *Server) Start() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("zuliptest: listen on 127.0.0.1:0: %v", err))
	}
	s.StartListener(l)
}

// StartListener serves on l, which the Server then owns.
func (s *Server) StartListener(l net.Listener) {
	if s.ts != nil {
		panic("zuliptest: Server started twice")
	}
	ts := httptest.NewUnstartedServer(s.handler)
	ts.Listener.Close()
	ts.Listener = l
	ts.Config.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	// Set before serving starts, so handlers read it without a lock.
	s.URL = "http://" + l.Addr().String()
	ts.Start()
	s.ts = ts
}

// Close ends waiting long-polls by closing their connections, then stops
// the server and waits for running requests, like httptest.Server.Close.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	if s.ts != nil {
		s.ts.Close()
	}
}

// Client returns an HTTP client for the server (plain http.Client when the
// server was not started by Start).
func (s *Server) Client() *http.Client {
	if s.ts != nil {
		return s.ts.Client()
	}
	return &http.Client{}
}

// Bots returns the accepted credentials.
func (s *Server) Bots() []Bot { return append([]Bot(nil), s.cfg.Bots...) }

// Realm returns the realm the server serves, default bots included.
func (s *Server) Realm() Realm {
	r := s.realm.Realm
	r.Users = append([]User(nil), r.Users...)
	r.Streams = append([]Stream(nil), r.Streams...)
	r.Emoji = append([]Emoji(nil), r.Emoji...)
	if r.URL == "" {
		r.URL = s.baseURL(nil)
	}
	return r
}

func (s *Server) baseURL(r *http.Request) string {
	if s.realm.URL != "" {
		return s.realm.URL
	}
	u := s.URL
	if u == "" && r != nil {
		u = "http://" + r.Host
	}
	return u
}

// call is one API request on its way through the handler chain.
type call struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	p      params
	user   *User // nil for unauthenticated endpoints
	fault  decision
	header http.Header // extra headers for the response (rate limit)
}

type endpoint struct {
	method string
	auth   bool
	handle func(*call)
}

func (s *Server) routes() http.Handler {
	table := map[string][]endpoint{
		"/api/v1/register":        {{http.MethodPost, true, s.handleRegister}},
		"/api/v1/events":          {{http.MethodGet, true, s.handleGetEvents}, {http.MethodDelete, true, s.handleDeleteQueue}},
		"/api/v1/messages":        {{http.MethodGet, true, s.handleGetMessages}, {http.MethodPost, true, s.handleSendMessage}},
		"/api/v1/server_settings": {{http.MethodGet, false, s.handleServerSettings}},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{s: s, w: w, r: r, header: http.Header{}}
		s.log.Debug("zuliptest request", "method", r.Method, "path", r.URL.Path)
		c.fault = s.decideFault(r)
		if !c.applyPreFaults() {
			return
		}
		eps, ok := table[strings.TrimSuffix(r.URL.Path, "/")]
		if !ok {
			c.fail(&apiError{status: http.StatusNotFound, code: CodeBadRequest, msg: "Not Found"})
			return
		}
		var ep *endpoint
		var allowed []string
		for i := range eps {
			allowed = append(allowed, eps[i].method)
			if eps[i].method == r.Method {
				ep = &eps[i]
			}
		}
		if ep == nil {
			c.header.Set("Allow", strings.Join(allowed, ", "))
			c.fail(&apiError{status: http.StatusMethodNotAllowed, code: CodeBadRequest, msg: "Method Not Allowed"})
			return
		}
		if ep.auth {
			if err := s.authenticate(c); err != nil {
				c.fail(err)
				return
			}
			if err := s.rateLimit(c); err != nil {
				c.fail(err)
				return
			}
		}
		p, err := parseParams(r)
		if err != nil {
			c.fail(err.(*apiError))
			return
		}
		c.p = p
		ep.handle(c)
	})
}

var apiKeyFormat = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)

// authenticate checks HTTP Basic credentials with upstream's messages:
// every failure is 401 UNAUTHORIZED with a WWW-Authenticate challenge.
func (s *Server) authenticate(c *call) *apiError {
	h, ok := c.r.Header["Authorization"]
	if !ok || len(h) == 0 {
		return unauthorized("Missing authorization header for basic auth")
	}
	scheme, creds, ok := strings.Cut(strings.TrimSpace(h[0]), " ")
	if !ok {
		return unauthorized("Invalid authorization header for basic auth")
	}
	if !strings.EqualFold(scheme, "basic") {
		return unauthorized("This endpoint requires HTTP basic authentication.")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(creds))
	if err != nil {
		return unauthorized("Invalid authorization header for basic auth")
	}
	email, key, ok := strings.Cut(string(raw), ":")
	if !ok || strings.Contains(key, ":") {
		return unauthorized("Invalid authorization header for basic auth")
	}
	email, key = strings.TrimSpace(email), strings.TrimSpace(key)
	for _, b := range s.cfg.Bots {
		if strings.EqualFold(b.Email, email) && subtle.ConstantTimeCompare([]byte(b.APIKey), []byte(key)) == 1 {
			c.user = s.realm.userByEmail(b.Email)
			return nil
		}
	}
	if !apiKeyFormat.MatchString(key) {
		return unauthorized("Malformed API key")
	}
	return unauthorized("Invalid API key")
}

// respond writes a JSON body, applying the request's body faults. It
// reports whether the client was sent the whole, intact body.
func (c *call) respond(status int, body object) bool {
	raw, err := body.MarshalJSON()
	if err != nil {
		// Every body is built from values that encode; failing here is a
		// bug in the simulator, which a test must see.
		panic(fmt.Sprintf("zuliptest: encode response: %v", err))
	}
	for k, v := range c.header {
		c.w.Header()[k] = v
	}
	raw, intact := c.fault.mangle(raw)
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Content-Length", fmt.Sprint(len(raw)))
	c.w.WriteHeader(status)
	if _, err := c.w.Write(raw); err != nil {
		return false
	}
	return intact
}

func (c *call) ok(body object) bool {
	return c.respond(http.StatusOK, append(object{{"result", "success"}, {"msg", ""}}, body...))
}

func (c *call) fail(e *apiError) bool {
	for k, v := range e.header {
		c.header[k] = v
	}
	return c.respond(e.status, e.body())
}

// abort drops the connection without a response.
func (c *call) abort() {
	panic(http.ErrAbortHandler)
}

// sleep waits d on the server clock, or until the request or the server
// ends; it reports whether the full time passed.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}
