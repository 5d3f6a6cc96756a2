package source

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Sentinel errors callers act on; match them with errors.Is.
var (
	// ErrQueueExpired: the server does not know the event queue any more
	// (error code BAD_EVENT_QUEUE_ID). A new queue must be registered and the
	// gap backfilled. Queue.Next handles it itself.
	ErrQueueExpired = errors.New("zulip: event queue expired")
	// ErrUnauthorized: bad credentials, deactivated user or deactivated
	// realm. Retrying does not help; the operator has to act.
	ErrUnauthorized = errors.New("zulip: unauthorized")
	// ErrResponseTooLarge: a response body exceeded Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("zulip: response too large")
)

// Error codes of Zulip's error responses that the client acts on. Matching
// is on code, never on msg: forks and old servers word msg differently.
const (
	codeBadEventQueueID  = "BAD_EVENT_QUEUE_ID"
	codeUnauthorized     = "UNAUTHORIZED"
	codeInvalidAPIKey    = "INVALID_API_KEY"
	codeUserDeactivated  = "USER_DEACTIVATED"
	codeRealmDeactivated = "REALM_DEACTIVATED"
	codeRateLimitHit     = "RATE_LIMIT_HIT"
)

// APIError is an error response of the Zulip API: an HTTP status other than
// 200, with the code and msg of its JSON body when it had one.
type APIError struct {
	Method   string // HTTP method
	Endpoint string // path, e.g. /api/v1/events
	Status   int    // HTTP status
	Code     string // Zulip error code, e.g. BAD_EVENT_QUEUE_ID; empty if the body had none
	Msg      string // Zulip's msg, or a summary of a non-JSON body
	// RetryAfter is what the server asked to wait (Retry-After header or
	// retry-after field); zero when it did not say.
	RetryAfter time.Duration

	// Site and Email make an unauthorized error say which account failed.
	Site  string
	Email string
}

func (e *APIError) Error() string {
	status := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		status += " " + e.Code
	}
	prefix := fmt.Sprintf("zulip %s %s: %s", e.Method, e.Endpoint, status)
	if e.Msg != "" {
		prefix += ": " + e.Msg
	}
	switch {
	case e.Code == codeUserDeactivated:
		return fmt.Sprintf("%s: the account %s on %s is deactivated", prefix, e.Email, e.Site)
	case e.Code == codeRealmDeactivated:
		return fmt.Sprintf("%s: the organization %s is deactivated", prefix, e.Site)
	case e.unauthorized():
		return fmt.Sprintf("%s: %s rejected the credentials of %s "+
			"(check ZULIP_EMAIL and ZULIP_API_KEY, or the zuliprc named by ZULIP_CONFIG)",
			prefix, e.Site, e.Email)
	}
	return prefix
}

// Is makes errors.Is(err, ErrQueueExpired) and errors.Is(err, ErrUnauthorized)
// work on API errors.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrQueueExpired:
		return e.Code == codeBadEventQueueID
	case ErrUnauthorized:
		return e.unauthorized()
	}
	return false
}

func (e *APIError) unauthorized() bool {
	switch e.Code {
	case codeUnauthorized, codeInvalidAPIKey, codeUserDeactivated, codeRealmDeactivated:
		return true
	}
	// Servers before feature level 76 answered 403 for these; a 401 or 403
	// without a code is a proxy or an old server refusing the credentials.
	return e.Status == http.StatusUnauthorized || (e.Status == http.StatusForbidden && e.Code == "")
}

// RateLimitError is an HTTP 429 (code RATE_LIMIT_HIT): wait RetryAfter
// before the next request.
type RateLimitError struct {
	RetryAfter time.Duration
	Err        *APIError
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v (rate limited: retry after %v)", e.Err, e.RetryAfter)
}

func (e *RateLimitError) Unwrap() error { return e.Err }

// ResponseTooLargeError: a response body exceeded the configured limit. The
// events API has no paging, so asking again returns the same backlog; a
// Queue therefore gives the queue up and reports it lost (see Queue.Next).
type ResponseTooLargeError struct {
	Method   string
	Endpoint string
	Limit    int64
}

func (e *ResponseTooLargeError) Error() string {
	return fmt.Sprintf("zulip %s %s: response body exceeds %d bytes "+
		"(raise BRIDGE_ZULIP_MAX_RESPONSE_BYTES, e.g. %d)", e.Method, e.Endpoint, e.Limit, e.Limit*4)
}

func (e *ResponseTooLargeError) Is(target error) bool { return target == ErrResponseTooLarge }

// MalformedResponseError: the body of a 200 response was not what the API
// promises (truncated, not JSON, missing fields). Proxies and dropped
// connections produce these, so they are transient.
type MalformedResponseError struct {
	Method   string
	Endpoint string
	Err      error
}

func (e *MalformedResponseError) Error() string {
	return fmt.Sprintf("zulip %s %s: malformed response: %v", e.Method, e.Endpoint, e.Err)
}

func (e *MalformedResponseError) Unwrap() error { return e.Err }

// TransportError: the request did not get a complete response (connection
// refused or reset, TLS failure, timeout, body cut short).
type TransportError struct {
	Method   string
	Endpoint string
	Err      error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("zulip %s %s: %v", e.Method, e.Endpoint, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// timeoutError is the cause of a request cancelled by the client's own
// deadline, as opposed to the caller's context.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no response within %v", e.after)
}

func (e *timeoutError) Timeout() bool { return true }

// IsTransient reports whether err is worth retrying unchanged: server errors
// (5xx, 408), rate limits, transport failures and malformed responses.
// Unauthorized, other 4xx, oversized responses, TLS certificate failures
// and context errors are not.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusRequestTimeout || ae.Status == http.StatusTooManyRequests
	}
	var te *TransportError
	if errors.As(err, &te) {
		return !tlsConfigError(te.Err)
	}
	var me *MalformedResponseError
	return errors.As(err, &me)
}

// tlsConfigError tells a TLS handshake that failed on certificates (theirs
// not trusted, ours refused) from a network failure: retrying does not fix
// a CA bundle or a client certificate, so it is reported at once.
func tlsConfigError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		alert    tls.AlertError
	)
	if errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &alert) {
		return true
	}
	// An alert from the server (crypto/tls reports it as a "remote error")
	// is its verdict on the handshake: most often a client certificate
	// that is missing or not trusted.
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// retryAfter returns the delay the server asked for, if it asked.
func retryAfter(err error) (time.Duration, bool) {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.RetryAfter, rl.RetryAfter > 0
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}
