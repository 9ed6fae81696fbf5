package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// HeadChannel is the PostgreSQL notification channel on which the
// database announces every change of an account row (schema version 2: a
// trigger on accounts), after the change commits. The payload is
// "<account id> <head seq> <head hash>", or "<account id>" alone when the
// row went away.
const HeadChannel = "enigm_heads"

// HeadEvents receives what a HeadWatcher learns, from one goroutine and in
// the order the database delivered it.
type HeadEvents interface {
	// Listening: the listener is subscribed; every head change committed
	// from now on will be announced with Changed.
	Listening()
	// Lost: the listener's connection failed or was closed. Changes may
	// go unannounced until the next Listening.
	Lost(err error)
	// Changed: the head of account changed to head, committed. head is
	// nil when the account row went away or the payload did not parse.
	Changed(account string, head *Head)
}

// HeadWatcher is implemented by stores whose database announces head
// changes to every instance connected to it (PostgreSQL LISTEN/NOTIFY).
type HeadWatcher interface {
	// WatchHeads listens on a dedicated connection until ctx ends,
	// reconnecting after failures with a backoff, and reports to ev. It
	// returns when ctx ends (after a last Lost).
	WatchHeads(ctx context.Context, ev HeadEvents)
}

// pgStore is the PostgreSQL engine: the SQL store and a head listener.
type pgStore struct {
	*sqlStore
	url string
}

var _ HeadWatcher = (*pgStore)(nil)

// Listener timings: how long a silent connection waits before it is
// pinged, how long the ping and a connection attempt may take, and the
// bounds of the reconnection backoff.
const (
	listenIdle       = 15 * time.Second
	listenPing       = 5 * time.Second
	listenConnect    = 10 * time.Second
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

func (s *pgStore) WatchHeads(ctx context.Context, ev HeadEvents) {
	backoff := listenBackoffMin
	for {
		start := time.Now()
		err := s.listen(ctx, ev)
		ev.Lost(err)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > listenBackoffMax {
			backoff = listenBackoffMin // it was up for a while
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listen connects, subscribes and reports notifications until the
// connection fails or ctx ends.
func (s *pgStore) listen(ctx context.Context, ev HeadEvents) error {
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		return err
	}
	name := cfg.RuntimeParams["application_name"]
	if name == "" {
		name = "enigm-command"
	}
	cfg.RuntimeParams["application_name"] = name + " head listener"
	cctx, cancel := context.WithTimeout(ctx, listenConnect)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return s.wrap(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+HeadChannel); err != nil {
		return s.wrap(err)
	}
	ev.Listening()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			account, head := parseHeadNotice(n.Payload)
			ev.Changed(account, head)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return s.wrap(err)
		}
		// Quiet for a while: make sure the connection is still there, so
		// that a silently dead one does not pass for a quiet database.
		pctx, cancel := context.WithTimeout(ctx, listenPing)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return s.wrap(err)
		}
	}
}

// parseHeadNotice parses a HeadChannel payload.
func parseHeadNotice(p string) (string, *Head) {
	f := strings.Fields(p)
	if len(f) != 3 {
		if len(f) == 0 {
			return "", nil
		}
		return f[0], nil
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return f[0], nil
	}
	return f[0], &Head{Seq: seq, Hash: f[2]}
}
