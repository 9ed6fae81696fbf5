package command

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Rate is a token bucket: Burst requests at once, refilled at PerMinute.
// A zero PerMinute disables the bucket.
type Rate struct {
	PerMinute float64
	Burst     float64
}

// RateLimits are the per-instance token buckets. Behind a load balancer
// each instance counts on its own.
//
// No bucket keyed by something public (an account id, a device id, a
// request id) is charged before the caller proved something only the
// legitimate party can: an outsider who knows an account must not be able
// to empty a bucket its devices need (docs/design/command.md, "Rate
// limits"). Before a proof a request draws on its address's bucket (IPv6
// addresses count by /64) and on a global one; after it, on its device's.
type RateLimits struct {
	Disabled bool

	// POST /v1/accounts/{id}/enrollments: per address and globally. An
	// enrollment request proves nothing (the new device has no standing
	// yet), so there is no per-account bucket: requests from outsiders are
	// visible noise that no device approves, and expire.
	EnrollPerAddr, EnrollGlobal Rate
	// POST …/recoveries and …/recoveries/{rid}/complete, before their
	// links are verified: per address and globally. A link that verifies
	// was signed with the recovery key (request) or the recovering
	// device's key (completion); the chain allows one pending recovery.
	RecoveryPerAddr, RecoveryGlobal Rate
	// POST /v1/auth/challenge and /v1/auth/token, per address.
	AuthPerAddr Rate
	// AuthVerify is the global budget of challenge signature verifications
	// for devices not yet proven from the caller's address.
	AuthVerify Rate
	// AuthPerDevice is charged per device once it proved itself: after a
	// valid signature, or before verification when the device proved
	// itself from this address before (see provenTTL).
	AuthPerDevice Rate
	// LinkPerDevice is charged per device for the links it appends that
	// are not urgent (rotate_keys, rotate_recovery), so that a stolen
	// device cannot keep moving the head to make the owner's revocation or
	// veto lose the compare-and-append every time (devices rebuild those on
	// a conflict). Revocations and vetoes are never charged.
	LinkPerDevice Rate
	// POST /v1/accounts, per address.
	AccountPerAddr Rate
}

// DefaultRateLimits are generous for people and tight for scripts. A
// challenge signature verification costs about half a millisecond of CPU;
// AuthVerify bounds that work to a few percent of a core.
func DefaultRateLimits() RateLimits {
	return RateLimits{
		EnrollPerAddr: Rate{30, 20}, EnrollGlobal: Rate{3000, 300},
		RecoveryPerAddr: Rate{10, 5}, RecoveryGlobal: Rate{600, 100},
		AuthPerAddr:    Rate{300, 100},
		AuthVerify:     Rate{12000, 400},
		AuthPerDevice:  Rate{60, 30},
		LinkPerDevice:  Rate{10, 5},
		AccountPerAddr: Rate{30, 20},
	}
}

// provenTTL is how long a device that proved itself from an address keeps
// drawing on its own budget instead of the global verification budget
// when it authenticates from there again; maxProven bounds how many such
// (device, address) pairs an instance remembers.
const (
	provenTTL = 7 * 24 * time.Hour
	maxProven = 100_000
)

type bucket struct {
	tokens float64
	last   time.Time
	full   time.Duration // idle this long, the bucket is full again
}

type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	// proven holds "device|address" pairs that produced a valid challenge
	// signature, with the time of the last one. Only a valid signature
	// adds a pair, and a bad one from the pair removes it.
	proven map[string]time.Time
	now    func() time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{buckets: make(map[string]*bucket), proven: make(map[string]time.Time), now: now}
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
			l.pruneLocked(now)
		}
		perSec := r.PerMinute / 60
		b = &bucket{tokens: r.Burst, last: now, full: time.Duration(r.Burst/perSec*float64(time.Second)) + time.Second}
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

// pruneLocked drops buckets idle long enough to be full again: a bucket
// made anew is the same.
func (l *limiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) > b.full {
			delete(l.buckets, k)
		}
	}
}

// isProven reports whether key proved itself within provenTTL.
func (l *limiter) isProven(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.proven[key]
	return ok && l.now().Sub(t) < provenTTL
}

// setProven records (ok) or forgets (!ok) a proven pair.
func (l *limiter) setProven(key string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		delete(l.proven, key)
		return
	}
	now := l.now()
	if _, known := l.proven[key]; !known && len(l.proven) >= maxProven {
		l.pruneProvenLocked(now)
		for k := range l.proven { // still full: make room (any entry)
			if len(l.proven) < maxProven {
				break
			}
			delete(l.proven, k)
		}
	}
	l.proven[key] = now
}

func (l *limiter) pruneProvenLocked(now time.Time) {
	for k, t := range l.proven {
		if now.Sub(t) >= provenTTL {
			delete(l.proven, k)
		}
	}
}

func (l *limiter) prune() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.pruneLocked(now)
	l.pruneProvenLocked(now)
}

// clientAddr is the request's peer address (no proxy headers are trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// addrKey is the address a per-address bucket counts: the IPv4 address,
// or the /64 prefix of an IPv6 address (one host usually holds a whole
// /64, so counting single IPv6 addresses would let it multiply its budget).
func addrKey(r *http.Request) string {
	a, err := netip.ParseAddr(clientAddr(r))
	if err != nil {
		return clientAddr(r)
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// limit takes a token from the caller's address's bucket, then from the
// global one (metric label name+"-global"); a 429 with Retry-After when
// either is empty. A zero Rate skips its bucket.
func (s *Server) limit(r *http.Request, name string, perAddr, global Rate) *apiError {
	if s.cfg.RateLimits.Disabled {
		return nil
	}
	if wait := s.limiter.take(name+"|addr|"+addrKey(r), perAddr); wait != 0 {
		return s.limited(name, wait)
	}
	if wait := s.limiter.take(name+"|global", global); wait != 0 {
		return s.limited(name+"-global", wait)
	}
	return nil
}

// limitKey takes a token from the bucket of key (a device, after its
// proof).
func (s *Server) limitKey(name, key string, rate Rate) *apiError {
	if s.cfg.RateLimits.Disabled {
		return nil
	}
	if wait := s.limiter.take(name+"|"+key, rate); wait != 0 {
		return s.limited(name, wait)
	}
	return nil
}

func (s *Server) limited(name string, wait int) *apiError {
	s.metrics.rateLimited.inc(name)
	e := errorf(http.StatusTooManyRequests, "rate_limited", "too many %s requests; retry in %d s", name, wait)
	e.retryIn = wait
	return e
}
