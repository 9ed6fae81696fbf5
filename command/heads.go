package command

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/enigm/enigm/command/store"
)

// headWatch tracks, per instance, which cached heads are known to be
// current, from the database's head announcements (store.HeadWatcher:
// PostgreSQL LISTEN/NOTIFY, sent by a trigger after every committed change
// of an account row, whoever makes it).
//
// A cached verified state may stand in for a database head read only
// when it is fresh: the listener has been subscribed without interruption
// since the state's head was read from (or written to) the database, and
// no announcement for the account arrived since then, unless that
// announcement named the cached head itself. Because an announcement is
// sent after its commit, a head read that starts after an announcement
// was processed sees at least the announced head. Hence the guarantee: an
// instance serves a head older than the database's only until the
// announcement of the newer head reaches it (NOTIFY delivery time), never
// a head older than the last announcement it processed, and while its
// listener is down or reconnecting it reads the head on every request.
type headWatch struct {
	mu      sync.Mutex
	live    bool   // subscribed
	epoch   uint64 // changes at every subscription and every loss
	counter uint64 // announcements processed
	// floor: tickets below it are void (the notices map was pruned).
	floor   uint64
	notices map[string]notice // by account: the last announcement
	max     int               // prune notices beyond this many accounts

	changed chan struct{} // closed and replaced after every event (tests)

	liveGauge     atomic.Bool
	announcements atomic.Uint64
	losses        atomic.Uint64
}

type notice struct {
	n    uint64
	head *store.Head // nil: unknown (account gone, unparsable)
}

// ticket records when a head was read: the subscription epoch and the
// number of announcements processed before the read began. The zero
// ticket is never fresh.
type ticket struct {
	ok       bool
	epoch, n uint64
}

func newHeadWatch(max int) *headWatch {
	return &headWatch{notices: map[string]notice{}, max: max, changed: make(chan struct{})}
}

// begin returns the ticket for a head read about to start.
func (h *headWatch) begin() ticket {
	if h == nil {
		return ticket{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.live {
		return ticket{}
	}
	return ticket{ok: true, epoch: h.epoch, n: h.counter}
}

// fresh reports whether head, read from the database under t, is still
// the account's head as far as this instance can know.
func (h *headWatch) fresh(account string, head store.Head, t ticket) bool {
	if h == nil || !t.ok {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.live || t.epoch != h.epoch || t.n < h.floor {
		return false
	}
	nt, ok := h.notices[account]
	return !ok || nt.n <= t.n || (nt.head != nil && *nt.head == head)
}

// Listening implements store.HeadEvents.
func (h *headWatch) Listening() {
	h.mu.Lock()
	h.live, h.epoch = true, h.epoch+1
	h.liveGauge.Store(true)
	h.signal()
	h.mu.Unlock()
}

// Lost implements store.HeadEvents.
func (h *headWatch) Lost(error) {
	h.mu.Lock()
	if h.live {
		h.losses.Add(1)
	}
	h.live, h.epoch = false, h.epoch+1
	h.liveGauge.Store(false)
	h.signal()
	h.mu.Unlock()
}

// Changed implements store.HeadEvents.
func (h *headWatch) Changed(account string, head *store.Head) {
	h.mu.Lock()
	h.counter++
	if len(h.notices) >= h.max {
		// Forget every account's last announcement; tickets taken before
		// now become void, so their entries are read again.
		clear(h.notices)
		h.floor = h.counter
	}
	h.notices[account] = notice{n: h.counter, head: head}
	h.announcements.Add(1)
	h.signal()
	h.mu.Unlock()
}

func (h *headWatch) signal() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// wait blocks until cond holds (checked under the lock after every event)
// or ctx ends. For tests.
func (h *headWatch) wait(ctx context.Context, cond func(h *headWatch) bool) error {
	for {
		h.mu.Lock()
		ok, ch := cond(h), h.changed
		h.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// loggedHeads logs the listener's subscriptions and losses: every loss
// of a subscription, and the first failure to subscribe again.
type loggedHeads struct {
	*headWatch
	log   *slog.Logger
	quiet bool // a failure of this outage was logged
}

func (l *loggedHeads) Listening() {
	l.headWatch.Listening()
	l.quiet = false
	l.log.Info("listening for head announcements: public reads use cached heads while they are known fresh", "channel", store.HeadChannel)
}

func (l *loggedHeads) Lost(err error) {
	was := l.liveGauge.Load()
	l.headWatch.Lost(err)
	if err == nil || errors.Is(err, context.Canceled) || l.quiet {
		return
	}
	l.quiet = true
	if was {
		l.log.Warn("head listener lost its subscription: reading heads from the database until it is back", "err", err)
	} else {
		l.log.Warn("head listener cannot subscribe: reading heads from the database, retrying", "err", err)
	}
}
