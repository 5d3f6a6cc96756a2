package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// config is zulipsim's configuration: environment first, flags over it.
type config struct {
	Addr         string        `env:"ZULIPSIM_ADDR" envDefault:"127.0.0.1:9991"`
	Bots         []string      `env:"ZULIPSIM_BOT" envSeparator:","`
	Rate         float64       `env:"ZULIPSIM_RATE" envDefault:"0"`
	Heartbeat    time.Duration `env:"ZULIPSIM_HEARTBEAT" envDefault:"50s"`
	QueueTimeout time.Duration `env:"ZULIPSIM_QUEUE_TIMEOUT" envDefault:"10m"`
	RateLimit    int           `env:"ZULIPSIM_RATE_LIMIT" envDefault:"0"`
	Seed         uint64        `env:"ZULIPSIM_SEED" envDefault:"1"`
	// Probe asks the simulator on Addr whether it serves instead of
	// serving: a healthcheck for images without curl (-probe only).
	Probe bool
}

// Validate reports the first invalid setting, naming its variable.
func (c config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("ZULIPSIM_ADDR / -addr %q is not host:port (example: 127.0.0.1:9991)", c.Addr)
	}
	if _, err := parseBots(c.Bots); err != nil {
		return err
	}
	if c.Rate < 0 {
		return fmt.Errorf("ZULIPSIM_RATE / -rate is %v; it must be >= 0 events per second (example: 20)", c.Rate)
	}
	if c.Heartbeat <= 0 {
		return fmt.Errorf("ZULIPSIM_HEARTBEAT / -heartbeat is %v; it must be positive (example: 50s)", c.Heartbeat)
	}
	if c.QueueTimeout <= 0 {
		return fmt.Errorf("ZULIPSIM_QUEUE_TIMEOUT / -queue-timeout is %v; it must be positive (example: 10m)", c.QueueTimeout)
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("ZULIPSIM_RATE_LIMIT / -rate-limit is %d; it must be >= 0, 0 meaning unlimited (example: 200)", c.RateLimit)
	}
	return nil
}

func parseBots(specs []string) ([]zuliptest.Bot, error) {
	bots := make([]zuliptest.Bot, 0, len(specs))
	for _, spec := range specs {
		email, key, ok := strings.Cut(strings.TrimSpace(spec), ":")
		if !ok || !strings.Contains(email, "@") || key == "" {
			// The spec holds a key: name the bot, never echo the key.
			return nil, fmt.Errorf("ZULIPSIM_BOT / -bot entry for %q is not EMAIL:KEY (example: %s:%s)", email, "bot@zulip.example.com", strings.Repeat("x", 32))
		}
		bots = append(bots, zuliptest.Bot{Email: email, APIKey: key})
	}
	return bots, nil
}

// botFlag collects repeated -bot flags; the first one given replaces the
// environment's list.
type botFlag struct {
	list *[]string
	set  bool
}

func (b *botFlag) String() string {
	if b.list == nil {
		return ""
	}
	return fmt.Sprint(len(*b.list), " bots")
}

func (b *botFlag) Set(v string) error {
	if !b.set {
		*b.list, b.set = nil, true
	}
	*b.list = append(*b.list, v)
	return nil
}

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	environ := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "ZULIPSIM_") {
			environ[k] = v
		}
	}
	return serve(ctx, os.Args[1:], environ, os.Stderr)
}

// serve runs the simulator until ctx ends; it returns the exit code.
func serve(ctx context.Context, args []string, environ map[string]string, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := loadConfig(args, environ, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		log.Error("zulipsim: bad configuration", "error", err)
		return 2
	}
	if cfg.Probe {
		return probe(ctx, cfg.Addr, stderr)
	}
	bots, _ := parseBots(cfg.Bots)
	srv, err := zuliptest.New(zuliptest.Config{
		Bots:              bots,
		HeartbeatInterval: cfg.Heartbeat,
		QueueTimeout:      cfg.QueueTimeout,
		RateLimit:         cfg.RateLimit,
		Logger:            log,
	})
	if err != nil {
		log.Error("zulipsim: bad configuration", "error", err)
		return 2
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("zulipsim: listen", "addr", cfg.Addr, "error", err)
		return 1
	}
	srv.StartListener(l)
	log.Info("zulipsim listening", "url", srv.URL)
	for _, b := range srv.Bots() {
		// Simulator credentials are published test values, logged so a
		// developer can point a client at the simulator.
		log.Info("zulipsim bot", "email", b.Email, "api_key", b.APIKey, "site", srv.URL)
	}

	// genErr stays nil, blocking forever, when no traffic is generated.
	var genErr chan error
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	if cfg.Rate > 0 {
		gen, err := zuliptest.NewGenerator(srv, zuliptest.GeneratorConfig{Rate: cfg.Rate, Seed: cfg.Seed})
		if err != nil {
			srv.Close()
			log.Error("zulipsim: traffic generator", "error", err)
			return 1
		}
		log.Info("zulipsim generating traffic", "events_per_second", cfg.Rate, "seed", cfg.Seed)
		genErr = make(chan error, 1)
		go func() { genErr <- gen.Run(genCtx) }()
	}

	code := 0
	select {
	case <-ctx.Done():
		log.Info("zulipsim stopping")
	case err := <-genErr:
		// Run returns before ctx ends only when it failed.
		log.Error("zulipsim: traffic generator stopped", "error", err)
		code = 1
	}
	stopGen()
	if genErr != nil && code == 0 {
		<-genErr
	}
	srv.Close()
	log.Info("zulipsim stopped")
	return code
}

func loadConfig(args []string, environ map[string]string, stderr io.Writer) (config, error) {
	var cfg config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environ}); err != nil {
		return cfg, fmt.Errorf("environment: %w", err)
	}
	fs := flag.NewFlagSet("zulipsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address (ZULIPSIM_ADDR)")
	fs.Var(&botFlag{list: &cfg.Bots}, "bot", "accepted bot as EMAIL:KEY, repeatable (ZULIPSIM_BOT, comma-separated; default "+zuliptest.DefaultBot.Email+")")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "generated events per second, 0 = none (ZULIPSIM_RATE)")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", cfg.Heartbeat, "heartbeat interval of an idle long-poll (ZULIPSIM_HEARTBEAT)")
	fs.DurationVar(&cfg.QueueTimeout, "queue-timeout", cfg.QueueTimeout, "idle event queue lifespan (ZULIPSIM_QUEUE_TIMEOUT)")
	fs.IntVar(&cfg.RateLimit, "rate-limit", cfg.RateLimit, "requests per minute per bot, 0 = unlimited (ZULIPSIM_RATE_LIMIT)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "traffic generator seed (ZULIPSIM_SEED)")
	fs.BoolVar(&cfg.Probe, "probe", false, "do not serve: exit 0 if the simulator on -addr answers GET /api/v1/server_settings with 200, else 1 (a healthcheck)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, cfg.Validate()
}
