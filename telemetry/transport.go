package telemetry

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RoundTripper returns base (http.DefaultTransport when nil) counting every
// request in zulip_bridge_zulip_requests_total and timing it in
// zulip_bridge_zulip_request_duration_seconds.
//
// Labels come from fixed lists only: the endpoint is the path below
// /api/v1/ when it is one the bridge calls ("other" otherwise, so ids in
// paths never become labels), never the query string, which carries the
// queue id, nor the host or credentials. The status is the HTTP code, or
// "timeout" when a deadline passed first (the context's, or one whose
// cancel cause reports Timeout(), as the Zulip client's own does), or
// "canceled" when the caller gave up (shutdown), or "error" for any other
// failure to get a response.
//
// It does not touch requests or responses. It forwards
// CloseIdleConnections to base, so http.Client.CloseIdleConnections keeps
// working.
func (t *Telemetry) RoundTripper(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &roundTripper{next: base, t: t}
}

type roundTripper struct {
	next http.RoundTripper
	t    *Telemetry
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	began := rt.t.clock.Now()
	resp, err := rt.next.RoundTrip(req)
	took := rt.t.clock.Since(began).Seconds()

	endpoint, method := zulipEndpoint(req.URL.Path), requestMethod(req.Method)
	ctx := req.Context()
	status := "error"
	switch {
	case err == nil:
		status = statusLabel(resp.StatusCode)
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled):
		status = "canceled"
	case isTimeout(err) || (ctx.Err() != nil && isTimeout(context.Cause(ctx))):
		status = "timeout"
	}
	m := rt.t.m
	m.zulipRequests.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(
		attribute.String("endpoint", endpoint),
		attribute.String("method", method),
		attribute.String("status", status),
	)))
	m.zulipDuration.Record(ctx, took, metric.WithAttributeSet(attribute.NewSet(
		attribute.String("endpoint", endpoint),
		attribute.String("method", method),
	)))
	return resp, err
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}

func (rt *roundTripper) CloseIdleConnections() {
	if c, ok := rt.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// zulipEndpoint turns a request path into its endpoint label: "/api/v1/"
// and a known endpoint, or "other". The site may live below a path prefix
// (https://example.com/zulip/api/v1/events), which is dropped.
func zulipEndpoint(path string) string {
	const api = "/api/v1/"
	i := strings.Index(path, api)
	if i < 0 {
		return otherLabel
	}
	ep := strings.TrimSuffix(path[i+len(api):], "/")
	if slices.Contains(zulipEndpoints, ep) {
		return api + ep
	}
	return otherLabel
}

func requestMethod(m string) string {
	if m == "" {
		return http.MethodGet // net/http's meaning of an empty method
	}
	if slices.Contains(httpMethods, m) {
		return m
	}
	return otherLabel
}

// statusLabel is the status code, or "other" for a code outside the range
// HTTP defines, which a misbehaving server could otherwise vary at will.
func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return otherLabel
	}
	return strconv.Itoa(code)
}
