package command

import (
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// Rate is a token bucket: Burst requests at once, refilled at PerMinute.
// A zero PerMinute disables the bucket.
type Rate struct {
	PerMinute float64
	Burst     float64
}

// RateLimits are the per-instance token buckets, by client address and
// by account. Behind a load balancer each instance counts on its own.
type RateLimits struct {
	Disabled bool

	EnrollPerAddr, EnrollPerAccount     Rate // POST …/enrollments
	RecoveryPerAddr, RecoveryPerAccount Rate // POST …/recoveries and …/recoveries/{rid}/complete
	AuthPerAddr, AuthPerAccount         Rate // POST /v1/auth/challenge and /v1/auth/token
	AccountPerAddr                      Rate // POST /v1/accounts
}

// DefaultRateLimits are generous for people and tight for scripts.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		EnrollPerAddr: Rate{30, 20}, EnrollPerAccount: Rate{20, 10},
		RecoveryPerAddr: Rate{10, 5}, RecoveryPerAccount: Rate{6, 4},
		AuthPerAddr: Rate{300, 100}, AuthPerAccount: Rate{120, 60},
		AccountPerAddr: Rate{30, 20},
	}
}

type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{buckets: make(map[string]*bucket), now: now}
}

// take takes a token from key's bucket and returns 0, or the seconds until
// one is available.
func (l *limiter) take(key string, r Rate) int {
	if r.PerMinute <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) > 100_000 {
			l.pruneLocked(now, r)
		}
		b = &bucket{tokens: r.Burst, last: now}
		l.buckets[key] = b
	}
	perSec := r.PerMinute / 60
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(r.Burst, b.tokens+el*perSec)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return int(math.Ceil((1 - b.tokens) / perSec))
}

// pruneLocked drops buckets idle long enough to be full again.
func (l *limiter) pruneLocked(now time.Time, r Rate) {
	full := time.Duration(r.Burst/(r.PerMinute/60)*float64(time.Second)) + time.Minute
	for k, b := range l.buckets {
		if now.Sub(b.last) > full {
			delete(l.buckets, k)
		}
	}
}

func (l *limiter) prune() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for k, b := range l.buckets {
		if now.Sub(b.last) > time.Hour {
			delete(l.buckets, k)
		}
	}
}

// clientAddr is the request's peer address (no proxy headers are trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limit applies the named pair of buckets (per address, and per account
// when account is set); a 429 with Retry-After when either is empty.
func (s *Server) limit(r *http.Request, name string, perAddr, perAccount Rate, account string) *apiError {
	if s.cfg.RateLimits.Disabled {
		return nil
	}
	wait := s.limiter.take(name+"|addr|"+clientAddr(r), perAddr)
	if account != "" && wait == 0 {
		wait = s.limiter.take(name+"|acct|"+account, perAccount)
	}
	if wait == 0 {
		return nil
	}
	s.metrics.rateLimited.inc(name)
	e := errorf(http.StatusTooManyRequests, "rate_limited", "too many %s requests; retry in %d s", name, wait)
	e.retryIn = wait
	return e
}
