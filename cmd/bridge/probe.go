package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// probeTimeout bounds one probe: a container runtime runs it every few
// seconds, and a bridge that cannot answer within it is not healthy.
const probeTimeout = 2 * time.Second

// probePaths maps the probe kinds to the bridge's endpoints.
var probePaths = map[string]string{
	"ready": "/readyz",
	"live":  "/healthz",
}

// cmdProbe asks a running bridge on this host whether it is ready (or
// live), for container healthchecks: the distroless image has no curl.
// It reads only BRIDGE_HTTP_ADDR, parsed as `bridge run` parses it, so the
// healthcheck needs neither the credentials nor the rest of the
// configuration. Exit 0 on 200, 1 otherwise, 2 for a usage error.
func cmdProbe(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	kind := "ready"
	if len(args) > 0 {
		kind = args[0]
	}
	path, ok := probePaths[kind]
	if !ok || len(args) > 1 {
		fmt.Fprintf(stderr, "bridge probe: want `bridge probe [ready|live]`, got %q\n\n%s", args, usage)
		return exitConfig
	}
	var cfg bridgeConfig
	if err := envconfig.Parse(&cfg, environ); err != nil {
		printConfigError(stderr, err)
		return exitConfig
	}
	target, err := probeURL(cfg.HTTPAddr, path)
	if err != nil {
		fmt.Fprintf(stderr, "bridge probe: %v\n", err)
		return exitConfig
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	status, body, err := probeGet(pctx, target)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "bridge probe %s: %s: %v\n", kind, target, err)
		return exitFailed
	case status != http.StatusOK:
		fmt.Fprintf(stderr, "bridge probe %s: %s: %d %s: %s\n", kind, target, status, http.StatusText(status), oneLine(body))
		return exitFailed
	}
	fmt.Fprintf(stdout, "bridge probe %s: %s: ok\n", kind, target)
	return exitOK
}

// probeURL is the endpoint's URL on the address the bridge listens on. A
// wildcard or empty host (":8080", "0.0.0.0:8080") is reached on the
// loopback address; a specific host is used as it is.
func probeURL(addr, path string) (string, error) {
	if addr == httpOff {
		return "", errors.New("BRIDGE_HTTP_ADDR is off: the bridge serves no endpoint to probe (example: BRIDGE_HTTP_ADDR=:8080)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("BRIDGE_HTTP_ADDR: %q is not host:port or off (example: BRIDGE_HTTP_ADDR=:8080)", addr)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("BRIDGE_HTTP_ADDR: %q has no fixed port to probe (example: BRIDGE_HTTP_ADDR=:8080)", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

// probeGet GETs target without proxies (a probe must reach this host, not an
// HTTP_PROXY) and returns the status and the start of the body.
func probeGet(ctx context.Context, target string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, "", err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, "", fmt.Errorf("no answer within %s", probeTimeout)
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // it repeats the URL, which the caller prints
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}

// oneLine joins a response body's lines so that the probe prints one line,
// which is what a container runtime keeps of a failed healthcheck.
func oneLine(body string) string {
	s := strings.Join(strings.Fields(strings.ReplaceAll(body, "\n", "; ")), " ")
	s = strings.TrimSuffix(s, ";")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
