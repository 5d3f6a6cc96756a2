package zuliptest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// zulipSpec is Zulip's OpenAPI description (testdata/zulip/zulip.yaml,
// Apache-2.0, LICENSE and NOTICE beside it), loaded once.
var zulipSpec = sync.OnceValues(func() (*openapi3.T, error) {
	openapi3filter.RegisterBodyDecoder("application/x-www-form-urlencoded", zulipFormDecoder)
	loader := openapi3.NewLoader()
	return loader.LoadFromFile("testdata/zulip/zulip.yaml")
})

// zulipFormDecoder decodes a urlencoded body the way Zulip reads one, for
// request validation. kin-openapi's own decoder refuses object-typed
// properties (register's client_capabilities) even when the spec encodes
// them as application/json, as Zulip encodes every list, object and
// boolean parameter. Here a property whose encoding is application/json is
// JSON-decoded (kept as the raw string when it is not JSON, as the server
// does for a bare stream name in `to`), integers are parsed, and the rest
// stays a string; the schema then judges the values.
func zulipFormDecoder(body io.Reader, _ http.Header, schema *openapi3.SchemaRef, encFn openapi3filter.EncodingFn) (any, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	values, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	for name := range values {
		v := values.Get(name)
		var prop *openapi3.Schema
		if ref := schema.Value.Properties[name]; ref != nil {
			prop = ref.Value
		}
		if enc := encFn(name); enc != nil && enc.ContentType == "application/json" {
			var decoded any
			if json.Unmarshal([]byte(v), &decoded) == nil {
				obj[name] = decoded
				continue
			}
		}
		if prop != nil && prop.Type.Is("integer") {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				obj[name] = n
				continue
			}
		}
		obj[name] = v
	}
	return obj, nil
}

// localSpec adapts the shared document for one simulator, in a copy that
// leaves the shared one untouched:
//   - the router matches requests against the servers list, so it lists
//     the simulator instead of zulipchat.com;
//   - the top-level security requirement names "basicAuth" while
//     components declare "BasicAuth" (a case mismatch upstream), and
//     kin-openapi refuses undeclared schemes: the lower-case name is
//     declared as an alias of the same scheme.
func localSpec(doc *openapi3.T, base string) *openapi3.T {
	local := *doc
	local.Servers = openapi3.Servers{{URL: base + "/api/v1"}}
	components := *doc.Components
	components.SecuritySchemes = maps.Clone(doc.Components.SecuritySchemes)
	components.SecuritySchemes["basicAuth"] = doc.Components.SecuritySchemes["BasicAuth"]
	local.Components = &components
	return &local
}

// basicAuthPresent is the AuthenticationFunc of the validation: the spec's
// requirement is HTTP Basic, so the request must carry Basic credentials
// (whether they are right is the auth tests' business).
func basicAuthPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if _, _, ok := in.RequestValidationInput.Request.BasicAuth(); !ok {
		return errors.New("no HTTP Basic credentials")
	}
	return nil
}

// validatingTransport checks every request a test sends and every
// response the simulator gives against the spec.
type validatingTransport struct {
	t      testing.TB
	router routers.Router
	// checked counts validated exchanges per "METHOD /path status".
	mu      sync.Mutex
	checked map[string]int
}

func newValidatingTransport(t testing.TB, srv *zuliptest.Server) *validatingTransport {
	t.Helper()
	doc, err := zulipSpec()
	if err != nil {
		t.Fatalf("load zulip.yaml: %v", err)
	}
	router, err := gorillamux.NewRouter(localSpec(doc, srv.URL))
	if err != nil {
		t.Fatalf("openapi router: %v", err)
	}
	return &validatingTransport{t: t, router: router, checked: map[string]int{}}
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))

	check := req.Clone(context.Background())
	check.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, pathParams, err := v.router.FindRoute(check)
	if err != nil {
		v.t.Errorf("openapi: no route for %s %s: %v", req.Method, req.URL.Path, err)
		return resp, nil
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc: basicAuthPresent,
		MultiError:         true,
	}
	in := &openapi3filter.RequestValidationInput{Request: check, PathParams: pathParams, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		v.t.Errorf("openapi: request %s %s does not match the spec: %v", req.Method, req.URL.Path, err)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                opts,
	}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		v.t.Errorf("openapi: response to %s %s (%d) does not match the spec: %v\nbody: %.2000s", req.Method, req.URL.Path, resp.StatusCode, err, respBody)
	}
	v.mu.Lock()
	v.checked[fmt.Sprintf("%s %s %d", req.Method, route.Path, resp.StatusCode)]++
	v.mu.Unlock()
	return resp, nil
}

// TestOpenAPIConformance sends the requests a Zulip client sends and checks
// every request and every response against Zulip's OpenAPI description:
// register in several shapes, events of all 71 example kinds, generated
// traffic, message events with and without Markdown, heartbeats, the
// BAD_EVENT_QUEUE_ID and last_event_id errors, DELETE /events, messages
// both ways, and server_settings.
func (v *validatingTransport) count(key string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.checked[key]
}

func TestOpenAPIConformance(t *testing.T) {
	srv, fc := newSim(t, zuliptest.Config{})
	vt := newValidatingTransport(t, srv)
	a := newAPI(t, srv)
	a.client = &http.Client{Transport: vt}

	if r := a.do(http.MethodGet, "/server_settings", nil); r.status != http.StatusOK {
		t.Fatalf("server_settings: %d %s", r.status, r.raw)
	}
	for _, form := range []url.Values{
		{"type": {"stream"}, "to": {`"Denmark"`}, "topic": {"castle"}, "content": {"hello **world**\n\nsecond <paragraph>"}},
		{"type": {"channel"}, "to": {"3"}, "topic": {"lunch"}, "content": {"/me is hungry"}},
		{"type": {"direct"}, "to": {`["hamlet@zulip.example.com"]`}, "content": {"psst"}},
		{"type": {"private"}, "to": {`[10, 11]`}, "content": {"group chat"}},
	} {
		if r := a.do(http.MethodPost, "/messages", form); r.status != http.StatusOK {
			t.Fatalf("send %v: %d %s", form, r.status, r.raw)
		}
	}

	full := a.register(url.Values{"include_subscribers": {"true"}, "client_gravatar": {"false"}})
	html := a.register(url.Values{"event_types": {`["message"]`}, "apply_markdown": {"true"}})
	narrowed := a.register(url.Values{
		"event_types":         {`["message","heartbeat"]`},
		"narrow":              {`[["channel","denmark"]]`},
		"fetch_event_types":   {`["message","realm_emoji","subscription","stream","realm_user","realm"]`},
		"queue_lifespan_secs": {"600"},
	})

	// Every example kind, then generated traffic, reaches the full queue.
	var examples []json.RawMessage
	raw, err := os.ReadFile("testdata/zulip/example-events.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &examples); err != nil {
		t.Fatal(err)
	}
	for _, e := range examples {
		inject(t, srv, string(e))
	}
	gen, err := zuliptest.NewGenerator(srv, zuliptest.GeneratorConfig{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if _, err := gen.Step(); err != nil {
			t.Fatal(err)
		}
	}
	got := a.getEvents(full, -1, false).events(t)
	if len(got) < len(examples)+200 {
		t.Fatalf("full queue got %d events, want at least %d", len(got), len(examples)+200)
	}
	a.getEvents(html, -1, true)
	a.getEvents(narrowed, -1, true)

	// A waiting GET answered by a heartbeat (its response has queue_id).
	last := eventIDs(got)[len(got)-1]
	a.getEvents(full, last, true)
	wait := async(func() response { return a.getEvents(full, last, false) })
	waitBlocked(t, fc, 1)
	fc.Advance(zuliptest.DefaultHeartbeatInterval)
	if ev := await(t, wait, "heartbeat").events(t); len(ev) != 1 || ev[0]["type"] != "heartbeat" {
		t.Fatalf("want one heartbeat, got %v", ev)
	}

	// Errors.
	for _, r := range []response{
		a.getEvents(full, last-1, true),        // behind what was pruned
		a.getEvents(full, last+100, true),      // ahead of what exists
		a.getEvents("no-such-queue", -1, true), // BAD_EVENT_QUEUE_ID
		a.do(http.MethodDelete, "/events", url.Values{"queue_id": {"no-such-queue"}}),
	} {
		if r.status != http.StatusBadRequest {
			t.Fatalf("want 400, got %d %s", r.status, r.raw)
		}
	}
	if r := a.do(http.MethodDelete, "/events", url.Values{"queue_id": {html}}); r.status != http.StatusOK {
		t.Fatalf("delete queue: %d %s", r.status, r.raw)
	}

	for _, q := range []url.Values{
		{"anchor": {"newest"}, "num_before": {"10"}, "num_after": {"0"}},
		{"anchor": {"oldest"}, "num_before": {"0"}, "num_after": {"10"}, "narrow": {`[{"operator":"channel","operand":"Denmark"}]`}, "apply_markdown": {"false"}},
		{"anchor": {"2"}, "num_before": {"1"}, "num_after": {"1"}, "include_anchor": {"false"}, "client_gravatar": {"false"}},
		{"anchor": {"first_unread"}, "num_before": {"0"}, "num_after": {"5"}, "narrow": {`[["is","dm"]]`}},
	} {
		if r := a.do(http.MethodGet, "/messages", q); r.status != http.StatusOK {
			t.Fatalf("get messages %v: %d %s", q, r.status, r.raw)
		}
	}

	// The exchanges above all went through the validator.
	for _, key := range []string{
		"GET /server_settings 200", "POST /messages 200", "POST /register 200",
		"GET /events 200", "GET /events 400", "DELETE /events 200", "DELETE /events 400", "GET /messages 200",
	} {
		if vt.count(key) == 0 {
			t.Errorf("no %s exchange was validated (validated: %v)", key, vt.checked)
		}
	}
}
