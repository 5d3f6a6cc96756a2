package source

import (
	"strings"
	"testing"
)

func TestParseSite(t *testing.T) {
	tests := []struct{ in, url, host, origin string }{
		{"chat.example.com", "https://chat.example.com", "chat.example.com", "https://chat.example.com"},
		{"https://chat.example.com/", "https://chat.example.com", "chat.example.com", "https://chat.example.com"},
		{"https://chat.example.com/api", "https://chat.example.com", "chat.example.com", "https://chat.example.com"},
		{"https://chat.example.com/api/", "https://chat.example.com", "chat.example.com", "https://chat.example.com"},
		{"https://Chat.Example.COM/", "https://chat.example.com", "chat.example.com", "https://chat.example.com"},
		{"https://Chat.Example.com:443/", "https://chat.example.com", "chat.example.com", "https://chat.example.com"},
		{" https://chat.example.com:443/api/v1 ", "https://chat.example.com/api/v1", "chat.example.com", "https://chat.example.com"},
		{"http://127.0.0.1:9991", "http://127.0.0.1:9991", "127.0.0.1:9991", "http://127.0.0.1:9991"},
		{"http://localhost:9991", "http://localhost:9991", "localhost:9991", "http://localhost:9991"},
		{"http://127.0.0.1:80", "http://127.0.0.1", "127.0.0.1", "http://127.0.0.1"},
		{"https://[::1]:8443", "https://[::1]:8443", "[::1]:8443", "https://[::1]:8443"},
		{"https://[::1]", "https://[::1]", "[::1]", "https://[::1]"},
		{"HTTPS://xn--caf-dma.example", "https://xn--caf-dma.example", "xn--caf-dma.example", "https://xn--caf-dma.example"},
		{"https://example.com/zulip/", "https://example.com/zulip", "example.com", "https://example.com"},
		// What FuzzParseSite found (testdata/fuzz/FuzzParseSite): String
		// keeps the path and an IPv6 zone escaped, so that it parses back.
		{"https://h.example/a%3Fb", "https://h.example/a%3Fb", "h.example", "https://h.example"},
		{"https://h.example/zulip%23x", "https://h.example/zulip%23x", "h.example", "https://h.example"},
		{"https://[fe80::1%25eth0]", "https://[fe80::1%25eth0]", "[fe80::1%eth0]", "https://[fe80::1%25eth0]"},
		{"https://[FE80::1%25Eth0]:443/x/", "https://[fe80::1%25eth0]/x", "[fe80::1%eth0]", "https://[fe80::1%25eth0]"},
		{"https://a%25b.example", "https://a%25b.example", "a%b.example", "https://a%25b.example"},
		{"https://h.example/a%20b/%2Fc/api/", "https://h.example/a%20b/%2Fc", "h.example", "https://h.example"},
		{"https://h.example/x/%61pi", "https://h.example/x", "h.example", "https://h.example"},
		{"https://h.example/x%2Fapi", "https://h.example/x%2Fapi", "h.example", "https://h.example"},
		{"https://h.example/%00", "https://h.example/%00", "h.example", "https://h.example"},
		// /api twice is the site too, so that String parses back to it.
		{"https://h.example/x/api/api/", "https://h.example/x", "h.example", "https://h.example"},
		{"0/api/api", "https://0", "0", "https://0"},
	}
	for _, tt := range tests {
		s, err := ParseSite(tt.in)
		if err != nil {
			t.Errorf("ParseSite(%q): %v", tt.in, err)
			continue
		}
		if s.String() != tt.url || s.Host() != tt.host || s.Origin() != tt.origin || s.url().String() != tt.url {
			t.Errorf("ParseSite(%q) = url %q host %q origin %q; want %q %q %q", tt.in, s, s.Host(), s.Origin(), tt.url, tt.host, tt.origin)
		}
		if !s.Same(tt.in) || !s.Same(s.String()) {
			t.Errorf("ParseSite(%q) is not the same as its own spellings", tt.in)
		}
		if again, err := ParseSite(s.String()); err != nil || again.String() != s.String() || again.Host() != s.Host() || again.Origin() != s.Origin() {
			t.Errorf("ParseSite(%q) = %q, which parses back as %q (host %q), %v", tt.in, s, again, again.Host(), err)
		}
	}
	if a, _ := ParseSite("https://a.example.com"); a.Same("https://b.example.com") || a.Same("https://a.example.com:8443") || a.Same("%zz") {
		t.Error("Same: different sites are the same")
	}
	// What releases before String escaped recorded in checkpoints, which
	// does not parse, is still the same site, and only that site's.
	for _, tt := range []struct{ site, recorded string }{
		{"https://h.example/a%3Fb", "https://h.example/a?b"},
		{"https://h.example/zulip%23x", "https://h.example/zulip#x"},
		{"https://[fe80::1%25eth0]", "https://[fe80::1%eth0]"},
		{"https://[fe80::1%25eth0]:8443/a%3Fb/api", "https://[fe80::1%eth0]:8443/a?b"},
	} {
		s, err := ParseSite(tt.site)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseSite(tt.recorded); err == nil {
			t.Fatalf("ParseSite(%q) parses: not a case of an older checkpoint that does not", tt.recorded)
		}
		if !s.Same(tt.recorded) {
			t.Errorf("ParseSite(%q).Same(%q) = false, want true: an older release recorded it", tt.site, tt.recorded)
		}
		other, _ := ParseSite(strings.Replace(tt.site, "h.example", "o.example", 1))
		if other != s && other.Same(tt.recorded) {
			t.Errorf("ParseSite(%q).Same(%q) = true: another site's checkpoint", other, tt.recorded)
		}
	}
	if (Site{}).Same("https://a.example.com") || !(Site{}).IsZero() {
		t.Error("the zero Site is a site")
	}
	if s, _ := ParseSite("https://Chat.Example.com:443"); s.LegacyHost() != "chat.example.com:443" {
		t.Errorf("LegacyHost = %q", s.LegacyHost())
	}
}

func TestParseSiteErrors(t *testing.T) {
	for _, tt := range []struct{ site, want string }{
		{"", "ZULIP_SITE: is not set"},
		{"ftp://chat.example.com", `scheme "ftp"`},
		{"https://", "no host"},
		{"https://chat.example.com?x=1", "query or fragment"},
		{"https://bot:s3cret@chat.example.com", "must not contain credentials"},
		{"https://bot:s3cret@chat example.com", "ZULIP_SITE: is not a URL"},
		{"https://bot:s3cret@chat.example.com/%zz", "ZULIP_SITE: is not a URL"},
		{"https://bot:s3cret%zz@chat.example.com", "ZULIP_SITE: is not a URL"},
		{"https://bot:s3cret@chat.example.com:port", "ZULIP_SITE: is not a URL"},
		{"https://café.example", "xn-- form"},
		{"https://chat.example.com:port", "ZULIP_SITE: is not a URL"},
	} {
		_, err := ParseSite(tt.site)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSite(%q) = %v, want an error containing %q", tt.site, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseSite(%q): error %q reveals the password", tt.site, err)
		}
		if !strings.HasSuffix(err.Error(), " (example: ZULIP_SITE=https://chat.example.com)") {
			t.Errorf("ParseSite(%q): error %q gives no example", tt.site, err)
		}
	}
}
