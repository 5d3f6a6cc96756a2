package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// runProbe runs `zulipsim -probe` with the given flags and environment.
func runProbe(args []string, environ map[string]string) (int, string) {
	var out bytes.Buffer
	code := serve(context.Background(), append([]string{"-probe"}, args...), environ, &out)
	return code, out.String()
}

func TestProbe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	lines := logLines(pr)
	done := make(chan int, 1)
	go func() {
		done <- serve(ctx, []string{"-addr", "127.0.0.1:0"}, map[string]string{}, pw)
		pw.Close()
	}()
	u, err := url.Parse(waitLine(t, lines, urlLine)[1])
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines { // keep the simulator's log from blocking it
		}
	}()
	port := u.Port()

	// As the compose healthcheck runs it: the container's environment, a
	// wildcard listen address.
	if code, out := runProbe(nil, map[string]string{"ZULIPSIM_ADDR": "0.0.0.0:" + port}); code != 0 || !strings.Contains(out, "/api/v1/server_settings: ok") {
		t.Errorf("probe of a running simulator: exit %d, %q", code, out)
	}
	if code, out := runProbe([]string{"-addr", "127.0.0.1:" + port}, map[string]string{}); code != 0 {
		t.Errorf("probe with -addr: exit %d, %q", code, out)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(testTimeout):
		t.Fatal("simulator did not stop")
	}
	if code, out := runProbe([]string{"-addr", "127.0.0.1:" + port}, map[string]string{}); code != 1 || !strings.Contains(out, "refused") {
		t.Errorf("probe of a stopped simulator: exit %d, %q", code, out)
	}
}

func TestProbeFailures(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer broken.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan []net.Conn)
	go func() {
		var held []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				accepted <- held
				return
			}
			held = append(held, c)
		}
	}()
	defer func() {
		silent.Close()
		for _, c := range <-accepted {
			c.Close()
		}
	}()

	tests := []struct {
		name, addr string
		code       int
		want       string
	}{
		{"not 200", strings.TrimPrefix(broken.URL, "http://"), 1, "500"},
		{"no answer", silent.Addr().String(), 1, "no answer within"},
		{"random port", "127.0.0.1:0", 2, "no fixed port"},
		{"bad address", "nowhere", 2, "ZULIPSIM_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runProbe([]string{"-addr", tt.addr}, map[string]string{})
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, %q; want %d and %q", code, out, tt.code, tt.want)
			}
		})
	}
}
