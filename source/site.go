package source

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// siteExample is the valid value every ZULIP_SITE error shows.
const siteExample = "https://chat.example.com"

// Site is a Zulip organization's address, parsed once from ZULIP_SITE. The
// client sends its requests to it, the mapping puts its host in Zulip-Site
// and the dedup keys, the checkpoint stores derive their key from it and
// record it: all from this one value, so that two spellings of the same
// site (upper case, an explicit default port, a trailing slash or /api, no
// scheme) are the same site everywhere. The zero value is no site.
type Site struct {
	scheme string // "https" or "http"
	// host is lower case, without a default port, IPv6 in brackets, and
	// decoded: an IPv6 zone is "%eth0", not "%25eth0" as in the URL.
	host string
	// path is escaped as in the URL (url.URL.EscapedPath), so that String
	// parses back to this site; without a trailing slash or /api; usually
	// empty.
	path string
	// legacyHost is the host as the bridge's older releases derived the
	// checkpoint key from it: lower case, with the port as written.
	legacyHost string
	// legacyString is what releases before String escaped its path and
	// zone recorded in checkpoints: origin and path decoded. It is String
	// except for a path or host with characters a URL escapes.
	legacyString string
}

// ParseSite parses a site as users write it: scheme optional (https is
// meant, or http for a site starting with "localhost", as Zulip's official
// client has it), trailing slash or /api optional. Errors name ZULIP_SITE,
// give a valid example and never quote the value, which could hold a
// password.
func ParseSite(raw string) (Site, error) {
	bad := func(problem string) (Site, error) {
		return Site{}, siteError(problem)
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return bad("is not set (nor site in a zuliprc named by ZULIP_CONFIG)")
	}
	if !strings.Contains(s, "://") {
		// The official client's rule, case-sensitive prefix and all:
		// localhost, localhost:9991 (its development server) and any
		// other site starting with "localhost" get http.
		if strings.HasPrefix(s, "localhost") {
			s = "http://" + s
		} else {
			s = "https://" + s
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		// A *url.Error quotes the whole value; its inner error names only
		// the faulty part.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if strings.Contains(s, "@") {
			// Even the faulty part may be a piece of the password.
			return bad("is not a URL (value not shown: it looks like it holds credentials)")
		}
		return bad(fmt.Sprintf("is not a URL: %v", err))
	}
	scheme := strings.ToLower(u.Scheme)
	name, port := strings.ToLower(u.Hostname()), u.Port()
	switch {
	case u.User != nil:
		return bad("must not contain credentials: use ZULIP_EMAIL and ZULIP_API_KEY")
	case scheme != "https" && scheme != "http":
		return bad(fmt.Sprintf("scheme %q is not http or https", u.Scheme))
	case name == "":
		return bad("has no host")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return bad("has a query or fragment")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return bad("host must be printable ASCII: write an internationalized domain in its xn-- form")
		}
	}
	legacy := strings.ToLower(u.Host)
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	host := name
	switch {
	case port != "":
		host = net.JoinHostPort(name, port)
	case strings.Contains(name, ":"): // IPv6 literal
		host = "[" + name + "]"
	}
	path := trimAPI(u.EscapedPath())
	legacyPath := strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/api")
	return Site{
		scheme:       scheme,
		host:         host,
		path:         path,
		legacyHost:   legacy,
		legacyString: scheme + "://" + host + legacyPath,
	}, nil
}

// trimAPI cuts the trailing slashes of an escaped path and every last
// segment that is "api" (escaped or not: "%61pi" too), so that the result
// parses back to itself (…/api/api is the site, as …/api is); an escaped
// slash (%2F) is a character of a segment, not a separator, so it stays.
func trimAPI(escaped string) string {
	p := strings.TrimRight(escaped, "/")
	for {
		i := strings.LastIndex(p, "/")
		if i < 0 {
			return p
		}
		seg, err := url.PathUnescape(p[i+1:])
		if err != nil || seg != "api" {
			return p
		}
		p = strings.TrimRight(p[:i], "/")
	}
}

func siteError(problem string) error {
	return &envconfig.Error{Key: "ZULIP_SITE", Problem: problem, Example: siteExample}
}

// Host returns the site's host, lower case and without a default port, e.g.
// "chat.example.com" or "localhost:9991": what identifies the site.
func (s Site) Host() string { return s.host }

// Origin returns scheme://host, e.g. "https://chat.example.com", the host
// escaped as in a URL (an IPv6 zone as "%25eth0").
func (s Site) Origin() string {
	if s.host == "" {
		return ""
	}
	return (&url.URL{Scheme: s.scheme, Host: s.host}).String()
}

// String returns the URL the API paths are joined to, e.g.
// "https://chat.example.com": the origin plus the path a server under a
// path prefix has, escaped, so that ParseSite(s.String()) is s again (what
// checkpoints record and BelongsTo compares with Same).
func (s Site) String() string { return s.Origin() + s.path }

// IsZero reports whether s is no site.
func (s Site) IsZero() bool { return s.host == "" }

// Same reports whether raw (a site as a checkpoint or an older release
// recorded it) is another spelling of s: same host, whatever the case,
// default port, scheme, trailing slash or /api.
//
// It also accepts what older releases recorded for s where that does not
// parse (their String did not escape the path or an IPv6 zone:
// "https://h.example/a?b" for "https://h.example/a%3Fb").
func (s Site) Same(raw string) bool {
	if s.IsZero() {
		return false
	}
	o, err := ParseSite(raw)
	if err != nil {
		return strings.TrimSpace(raw) == s.legacyString
	}
	return o.host == s.host
}

// LegacyHost returns the host as releases before one site value derived
// checkpoint keys from it: lower case, but with a default port kept when
// ZULIP_SITE spelled one (chat.example.com:443). It equals Host otherwise.
func (s Site) LegacyHost() string { return s.legacyHost }

// url returns a copy of the base URL, for the client to join paths to.
func (s Site) url() *url.URL {
	u := &url.URL{Scheme: s.scheme, Host: s.host}
	if path, err := url.PathUnescape(s.path); err == nil {
		u.Path, u.RawPath = path, s.path
	}
	return u
}
