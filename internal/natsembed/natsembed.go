package natsembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config says where the embedded server listens and stores its data.
type Config struct {
	// Addr is the client listen address, host:port. Port 0 picks a free port.
	Addr string
	// StoreDir is the directory under which JetStream keeps its streams.
	StoreDir string
	// Logger receives the server's log lines; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept clients
	// (default 10s).
	ReadyTimeout time.Duration
}

// ServerName is the embedded server's name, in the INFO it sends every
// client: `bridge check` recognises a running bridge's server by it.
const ServerName = "zulip-bridge-embedded"

// Server is a running embedded nats-server.
type Server struct {
	srv *server.Server
}

// Start starts a nats-server with JetStream and waits until it accepts
// clients.
func Start(cfg Config) (*Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: listen address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded nats: listen address %q: bad port", cfg.Addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else {
		// nats-server only logs a failed listen and never becomes ready:
		// try the address first, so that one in use fails at once rather
		// than after ReadyTimeout.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, portStr))
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen on %s: %w", cfg.Addr, err)
		}
		_ = ln.Close()
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	opts := &server.Options{
		ServerName: ServerName,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.StoreDir, "nats"),
		// The embedded server serves this process and local consumers;
		// no cluster, no HTTP monitoring port to collide with anything.
		NoSigs: true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(slogAdapter{cfg.Logger.With("component", "nats-server")}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(cfg.ReadyTimeout) {
		srv.Shutdown()
		return nil, errors.New("embedded nats: server not ready for connections in time (is the address in use?)")
	}
	return &Server{srv: srv}, nil
}

// ClientURL is the URL clients connect to, e.g. nats://127.0.0.1:4222.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// Shutdown stops the server, waiting until it is down or ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded nats: shutdown: %w", ctx.Err())
	}
}

// slogAdapter routes nats-server's printf-style logger into slog.
type slogAdapter struct{ l *slog.Logger }

// Noticef carries the server's start-up banner and routine notices: debug
// level, so that the bridge logs one line for "embedded NATS started".
func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
