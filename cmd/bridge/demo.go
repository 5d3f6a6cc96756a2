package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// demoRate is how many events per second the demo's simulator generates:
// enough to see every kind of event go by, slow enough to read.
const demoRate = 2

// cmdDemo is the zero-setup tour: the Zulip simulator with traffic, an
// embedded NATS server, the bridge between them, and a plain NATS consumer
// printing what it receives, until interrupted. State lives in a temporary
// directory removed at the end. BRIDGE_LOG_LEVEL and BRIDGE_SUBJECT_PREFIX
// are honoured; nothing else needs to be set.
func cmdDemo(ctx context.Context, environ []string, stdout, stderr io.Writer) int {
	user := envconfig.ToMap(environ)
	dir, err := os.MkdirTemp("", "zulip-bridge-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "bridge demo: %v\n", err)
		return exitFailed
	}
	defer os.RemoveAll(dir)

	sim, err := zuliptest.New(zuliptest.Config{})
	if err != nil {
		fmt.Fprintf(stderr, "bridge demo: simulator: %v\n", err)
		return exitFailed
	}
	sim.Start()
	defer sim.Close()

	bot := zuliptest.DefaultBot
	env := []string{
		"ZULIP_SITE=" + sim.URL,
		"ZULIP_EMAIL=" + bot.Email,
		"ZULIP_API_KEY=" + bot.APIKey,
		"BRIDGE_EVENT_TYPES=*",
		"BRIDGE_STATE_DIR=" + dir,
		"BRIDGE_NATS_EMBEDDED_ADDR=127.0.0.1:0",
		"BRIDGE_HTTP_ADDR=127.0.0.1:0",
		"BRIDGE_LOG_FORMAT=text",
		"BRIDGE_LOG_LEVEL=" + cmp.Or(user["BRIDGE_LOG_LEVEL"], "warn"),
		"BRIDGE_SUBJECT_PREFIX=" + cmp.Or(user["BRIDGE_SUBJECT_PREFIX"], "zulip"),
	}
	cfg, err := loadConfig(env)
	if err != nil {
		printConfigError(stderr, err)
		return exitConfig
	}
	log := newLogger(cfg.Bridge, stderr)
	a, err := start(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "bridge demo: %v\n", err)
		return exitFailed
	}
	defer a.stop(context.Background(), stopTimeout(cfg))

	// The consumer is what a downstream service would write: plain nats.go,
	// no bridge code.
	nc, err := nats.Connect(a.natsURL, nats.Name("zulip-bridge-demo-consumer"))
	if err != nil {
		fmt.Fprintf(stderr, "bridge demo: consumer: %v\n", err)
		return exitFailed
	}
	defer nc.Close()
	var out sync.Mutex
	sub, err := nc.Subscribe(cfg.Mapping.SubjectPrefix+".>", func(m *nats.Msg) {
		out.Lock()
		defer out.Unlock()
		printMsg(stdout, m)
	})
	if err != nil {
		fmt.Fprintf(stderr, "bridge demo: subscribe: %v\n", err)
		return exitFailed
	}
	defer sub.Unsubscribe()

	fmt.Fprintf(stdout, "zulip-bridge demo: simulator %s -> bridge -> NATS %s\n", sim.URL, a.natsURL)
	fmt.Fprintf(stdout, "consume it yourself meanwhile:  nats --server %s sub '%s.>'\n", a.natsURL, cfg.Mapping.SubjectPrefix)
	fmt.Fprintf(stdout, "health and metrics:             http://%s/readyz  http://%s/metrics\n", a.httpAddr, a.httpAddr)
	fmt.Fprintf(stdout, "press Ctrl-C to stop\n\n")

	gen, err := zuliptest.NewGenerator(sim, zuliptest.GeneratorConfig{Rate: demoRate, Seed: 1})
	if err != nil {
		fmt.Fprintf(stderr, "bridge demo: generator: %v\n", err)
		return exitFailed
	}
	go func() {
		if err := gen.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("demo traffic generator stopped", "error", err)
		}
	}()

	if err := a.run(ctx); err != nil {
		log.Error("bridge stopped", "error", err)
		return exitFailed
	}
	_ = nc.Drain()
	return exitOK
}

// printMsg shows one message as a consumer receives it: subject, headers
// (sorted), payload.
func printMsg(w io.Writer, m *nats.Msg) {
	var b strings.Builder
	fmt.Fprintf(&b, "── %s\n", m.Subject)
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range m.Header[k] {
			fmt.Fprintf(&b, "   %s: %s\n", k, v)
		}
	}
	payload := string(m.Data)
	if len(payload) > 600 {
		payload = payload[:600] + fmt.Sprintf("… (%d bytes)", len(m.Data))
	}
	fmt.Fprintf(&b, "   %s\n\n", payload)
	_, _ = io.WriteString(w, b.String())
}

// stopTimeout bounds each component's stop when the demo stops.
func stopTimeout(cfg *config) time.Duration {
	return max(time.Second, cfg.Pipeline.ShutdownTimeout/4)
}
