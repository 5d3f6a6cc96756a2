package zuliptest

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// unlimited is the X-RateLimit-Limit reported when Config.RateLimit is 0:
// the headers are always present, as upstream's are, and a client that
// paces itself on X-RateLimit-Remaining never runs dry.
const unlimited = math.MaxInt32

// rateLimit applies the per-bot sliding window the way upstream's
// RateLimitedUser does: a request is refused when the window already holds
// the limit, and then the client is told how long until the oldest request
// leaves the window. Every authenticated response carries the X-RateLimit
// headers, refused ones included.
func (s *Server) rateLimit(c *call) *apiError {
	now := s.clock.Now()
	window := s.cfg.RateWindow
	limit := s.cfg.RateLimit
	if limit == 0 {
		limit = unlimited
	}
	key := strings.ToLower(c.user.Email)

	s.mu.Lock()
	stamps := s.rate[key]
	i := 0
	for i < len(stamps) && now.Sub(stamps[i]) >= window {
		i++
	}
	stamps = stamps[i:]
	var secsToFreedom time.Duration
	forced, burst := s.takeBurst(c.r)
	limited := burst || len(stamps) >= limit
	if burst {
		secsToFreedom = forced
	} else if limited {
		secsToFreedom = window - now.Sub(stamps[0])
	} else {
		stamps = append(stamps, now)
	}
	s.rate[key] = stamps
	remaining := max(limit-len(stamps), 0)
	reset := now.Add(window)
	if len(stamps) > 0 {
		reset = stamps[0].Add(window)
	}
	if limited {
		reset = now.Add(secsToFreedom)
	}
	s.mu.Unlock()

	c.header.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	c.header.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	// Upstream truncates: int(time.time() + secs_to_freedom).
	c.header.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if !limited {
		return nil
	}
	secs := secsToFreedom.Seconds()
	s.log.Debug("zuliptest rate limit hit", "bot", c.user.Email, "retry_after", secs, "forced", burst)
	return &apiError{
		status: http.StatusTooManyRequests,
		code:   CodeRateLimitHit,
		msg:    "API usage exceeded rate limit",
		data:   object{{"retry-after", secs}},
		header: http.Header{"Retry-After": {strconv.FormatFloat(secs, 'f', -1, 64)}},
	}
}
