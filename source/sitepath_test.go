package source_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/source"
)

// TestSitePathKeptEscaped: a site whose path holds an escaped slash (a
// Zulip behind a proxy at /team%2Fchat, say) is asked at that path, not
// at the path with the slash unescaped.
func TestSitePathKeptEscaped(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/team%2Fchat", "/team%2Fchat/api/v1/register"},
		{"/team%2Fchat/", "/team%2Fchat/api/v1/register"},
		{"/a%20b/c", "/a%20b/c/api/v1/register"},
		{"/zulip", "/zulip/api/v1/register"},
		{"", "/api/v1/register"},
	} {
		var (
			mu  sync.Mutex
			got []string
		)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = append(got, r.RequestURI)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"result":"error","msg":"Invalid API key","code":"INVALID_API_KEY"}`))
		}))
		c, err := source.NewClient(source.Config{Site: srv.URL + tc.path, Email: "bot@example.com", APIKey: "k"}, source.WithVersion("test"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Open(context.Background(), source.State{}); err == nil {
			t.Fatalf("%s: Open succeeded against a server that refuses every key", tc.path)
		}
		srv.Close()
		mu.Lock()
		if len(got) == 0 || got[0] != tc.want {
			t.Errorf("site path %q: requests %q, want %q first", tc.path, got, tc.want)
		}
		mu.Unlock()
	}
}
