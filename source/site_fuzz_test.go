package source

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// FuzzParseSite feeds ParseSite (ZULIP_SITE) arbitrary values. An error is
// an envconfig.Error naming ZULIP_SITE with its example, on one line, and
// never shows the password of a value with userinfo (a canary put there
// must not come out). A site is what the rest of the bridge relies on: an
// http(s) origin with a lower-case host and no default port, the same site
// as the value it came from, and its String (what checkpoints record and
// BelongsTo compares with) parses back to the same site, unchanged.
func FuzzParseSite(f *testing.F) {
	for _, s := range []string{
		// TestParseSite and TestParseSiteErrors.
		"chat.example.com", "https://chat.example.com/", "https://chat.example.com/api", "https://chat.example.com/api/",
		"https://Chat.Example.COM/", "https://Chat.Example.com:443/", " https://chat.example.com:443/api/v1 ",
		"http://127.0.0.1:9991", "http://localhost:9991", "http://127.0.0.1:80", "https://[::1]:8443", "https://[::1]",
		"HTTPS://xn--caf-dma.example", "https://example.com/zulip/", "", "ftp://chat.example.com", "https://",
		"https://chat.example.com?x=1", "https://bot:s3cret@chat.example.com", "https://bot:s3cret@chat example.com",
		"https://bot:s3cret@chat.example.com/%zz", "https://bot:s3cret%zz@chat.example.com",
		"https://bot:s3cret@chat.example.com:port", "https://café.example",
		// Edges: escapes in the path, fragments, IPv6 zones, odd ports.
		"https://h.example/a%20b/%2Fc", "https://h.example/x/api/", "https://h.example#top", "localhost",
		"https://[fe80::1%25eth0]:443", "https://h.example:0443", "http://h.example:/", "//h.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := ParseSite(raw)
		if err != nil {
			checkSiteError(t, raw, err)
			if i := strings.Index(raw, "@"); i >= 0 {
				const canary = "C4NARY"
				withCanary := raw[:i] + canary + raw[i:]
				if _, err := ParseSite(withCanary); err != nil && strings.Contains(err.Error(), canary) {
					t.Fatalf("ParseSite(%q): the error shows the value's userinfo: %v", withCanary, err)
				}
			}
			return
		}
		// The origin is a URL of the host alone, which it holds escaped
		// (an IPv6 zone as %25eth0), in its one spelling.
		origin, host := s.Origin(), s.Host()
		ou, err := url.Parse(origin)
		if s.IsZero() || host != strings.ToLower(host) || strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r >= 0x7f }) ||
			err != nil || ou.Scheme != "https" && ou.Scheme != "http" || ou.Host != host || ou.String() != origin ||
			ou.Path != "" || ou.RawQuery != "" || ou.User != nil ||
			strings.HasSuffix(host, ":443") && ou.Scheme == "https" || strings.HasSuffix(host, ":80") && ou.Scheme == "http" {
			t.Fatalf("ParseSite(%q): origin %q, host %q", raw, origin, host)
		}
		str := s.String()
		if !strings.HasPrefix(str, origin) {
			t.Fatalf("ParseSite(%q): String %q, origin %q", raw, str, origin)
		}
		if u := s.url(); u.Host != host || u.String() != str {
			t.Fatalf("ParseSite(%q): url %q (host %q), String %q, host %q", raw, u, u.Host, str, host)
		}
		if !s.Same(raw) {
			t.Fatalf("ParseSite(%q) = %q, which is not the same site as its own value", raw, str)
		}
		// A trailing slash can stay when /api is cut ("/x//api" gives
		// "/x/"); requests trim it, so the site is the same.
		again, err := ParseSite(str)
		if err != nil || !s.Same(str) || strings.TrimRight(again.String(), "/") != strings.TrimRight(str, "/") ||
			again.Origin() != origin || again.Host() != host {
			t.Fatalf("ParseSite(%q) = %q, which parses back as %q, %v", raw, str, again, err)
		}
	})
}

// checkSiteError holds a ZULIP_SITE error to the one format.
func checkSiteError(t *testing.T, raw string, err error) {
	t.Helper()
	var ce *envconfig.Error
	msg := err.Error()
	if !errors.As(err, &ce) || ce.Key != "ZULIP_SITE" || ce.Example != siteExample ||
		!strings.HasPrefix(msg, "ZULIP_SITE: ") || !strings.HasSuffix(msg, " (example: ZULIP_SITE="+siteExample+")") ||
		strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("ParseSite(%q): error %q is not a ZULIP_SITE error in the one format", raw, err)
	}
}
