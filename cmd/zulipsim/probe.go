package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// probeTimeout bounds a -probe: a container runtime runs it every few
// seconds.
const probeTimeout = 2 * time.Second

// probe GETs the server settings of the simulator listening on addr (a
// wildcard host is reached on loopback) and returns the exit code: 0 on
// 200, 1 otherwise, with one line saying why.
func probe(ctx context.Context, addr string, w io.Writer) int {
	host, port, _ := net.SplitHostPort(addr) // Validate checked it
	if port == "0" {
		fmt.Fprintf(w, "zulipsim -probe: ZULIPSIM_ADDR / -addr %q has no fixed port to probe (example: 127.0.0.1:9991)\n", addr)
		return 2
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	target := "http://" + net.JoinHostPort(host, port) + "/api/v1/server_settings"
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(w, "zulipsim -probe: %v\n", err)
		return 2
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("GET %s: no answer within %s", target, probeTimeout)
		}
		fmt.Fprintf(w, "zulipsim -probe: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(w, "zulipsim -probe: GET %s: %s\n", target, resp.Status)
		return 1
	}
	fmt.Fprintf(w, "zulipsim -probe: GET %s: ok\n", target)
	return 0
}
