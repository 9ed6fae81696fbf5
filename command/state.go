package command

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
)

// verified is an account's chain state as this server verified it, for
// a given head: the compact form the state cache keeps. It holds what
// chain.Apply needs to verify the next link and what the handlers answer
// from (the chain.State: devices, keys, policy, organisation, recovery),
// not the links: a request that serves links reads them from the store
// (storedLinks) and checks each against the hash it had when verified.
type verified struct {
	account store.Account
	state   *chain.State
	hashes  []chain.Hash // hashes[i] is the hash of the verified link at seq i
	err     error        // the stored chain failed verification at this head

	// seen is the newest ticket under which this head was read from or
	// written to the database (headWatch); nil when never.
	seen atomic.Pointer[ticket]
}

// see records that v's head was current in the database under t.
func (v *verified) see(t ticket) {
	if !t.ok {
		return
	}
	for {
		old := v.seen.Load()
		if old != nil && (old.epoch > t.epoch || old.epoch == t.epoch && old.n >= t.n) {
			return
		}
		if v.seen.CompareAndSwap(old, &t) {
			return
		}
	}
}

// integrityError reports a stored chain that fails the server's own
// verification: a link or row changed in the database behind the server.
type integrityError struct {
	account string
	err     error
}

func (e *integrityError) Error() string {
	return fmt.Sprintf("stored chain of account %s fails verification: %v", e.account, e.err)
}

func (e *integrityError) Unwrap() error { return e.err }

// inconsistentError reports a database that contradicts what this
// instance verified before: a head below the account's mark (a lower
// sequence number, or another link at the marked one), a link row stored
// above the head, or a mark that fails its MAC. The database was rolled
// back or changed behind the server; nothing is served from it.
type inconsistentError struct {
	account string
	err     error
}

func (e *inconsistentError) Error() string {
	return fmt.Sprintf("the database is inconsistent for account %s: %v", e.account, e.err)
}

func (e *inconsistentError) Unwrap() error { return e.err }

// inconsistentLog is the log line of an *inconsistentError (once per
// account and database head).
const inconsistentLog = "the database is inconsistent with the account's chain (its head moved back behind the server); refusing to serve or extend it until the database is restored"

// load returns the verified state of an account at its current head.
// ErrNotFound for an unknown account; an *integrityError when the stored
// chain does not verify (logged, and counted).
func (s *Server) load(ctx context.Context, id string) (*verified, error) {
	acct, err := s.store.Account(ctx, id)
	if err != nil {
		return nil, err
	}
	s.metrics.headReads[headFromDatabase].Add(1)
	return s.loadAt(ctx, acct)
}

// loadFresh is load for the requests that may rely on the head
// announcements (headWatch): public chain and device-list reads and the
// enrollment steps whose append the database guards anyway. It serves the
// cached state without reading the database while its head is known to be
// fresh, and otherwise reads the head like load. Without announcements
// (SQLite, or the listener down) it is load.
func (s *Server) loadFresh(ctx context.Context, id string) (*verified, error) {
	if s.heads == nil {
		return s.load(ctx, id)
	}
	if c := s.cache.get(id); c != nil {
		if t := c.seen.Load(); t != nil && s.heads.fresh(id, c.account.Head, *t) {
			s.metrics.headReads[headFromCache].Add(1)
			s.cache.count(cacheHit)
			if c.err != nil {
				return nil, c.err
			}
			return c, nil
		}
	}
	t := s.heads.begin()
	acct, err := s.store.Account(ctx, id)
	if err != nil {
		return nil, err
	}
	s.metrics.headReads[headFromDatabase].Add(1)
	v, err := s.loadAt(ctx, acct)
	if err != nil {
		return nil, err
	}
	v.see(t)
	return v, nil
}

// loadAt returns the verified state at acct's head, read from the
// database by the caller. It refuses, with an *inconsistentError, a head
// below the account's mark (the highest head this instance verified,
// store.Marks) and link rows stored above the head; it raises the mark to
// every head it verifies, durably, before that head is served.
func (s *Server) loadAt(ctx context.Context, acct store.Account) (*verified, error) {
	m, ok, err := s.mark(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	var mk *store.Head
	if ok {
		mk = &m
	}
	if mk != nil && below(acct.Head, *mk) {
		// A head read that began before this instance recorded the mark
		// (its own append, or another request's verification) is stale,
		// not rolled back: read it again. A head read that starts after
		// the mark was recorded sees at least the marked head, unless
		// the database lost it.
		cur, err := s.store.Account(ctx, acct.ID)
		if err != nil {
			return nil, err
		}
		if below(cur.Head, *mk) {
			return nil, s.rolledBack(cur, *mk)
		}
		acct = cur
	}
	c := s.cache.get(acct.ID)
	switch {
	case c != nil && c.account.Head == acct.Head:
		s.cache.count(cacheHit)
		if c.err != nil {
			return nil, c.err
		}
		return c, nil
	case c != nil && c.err == nil && c.account.Head.Seq < acct.Head.Seq:
		s.cache.count(cacheExtend)
	default:
		s.cache.count(cacheMiss)
	}
	v, err := s.verifyStored(ctx, acct, c, mk)
	if err != nil {
		var ie *integrityError
		var ce *inconsistentError
		switch {
		case errors.As(err, &ie):
			s.log.Error("stored chain fails the server's verification; refusing to serve or extend it",
				"account", acct.ID, "head_seq", acct.Head.Seq, "err", ie.err)
		case errors.As(err, &ce):
			s.log.Error(inconsistentLog, "account", acct.ID, "head_seq", acct.Head.Seq, "err", ce.err)
		default:
			return nil, err // the database, not the chain
		}
		s.metrics.integrityFailures.Add(1)
		s.cache.put(acct.ID, &verified{account: acct, err: err})
		return nil, err
	}
	if err := s.accept(ctx, v, mk); err != nil {
		return nil, err
	}
	return v, nil
}

// accept raises the account's mark to v's head (durably: after a crash
// the instance still refuses a lower head) and caches v. mk is the mark
// read before v was verified. Nothing is served from v before accept.
func (s *Server) accept(ctx context.Context, v *verified, mk *store.Head) error {
	h := v.account.Head
	if h.Seq > 0 && (mk == nil || h.Seq > mk.Seq) {
		if err := s.marks.Raise(context.WithoutCancel(ctx), v.account.ID, h); err != nil {
			return fmt.Errorf("recording the verified head of account %s in the head marks: %w", v.account.ID, err)
		}
	}
	s.cache.put(v.account.ID, v)
	return nil
}

// mark returns the account's mark; ok is false when it has none.
func (s *Server) mark(ctx context.Context, id string) (h store.Head, ok bool, err error) {
	h, ok, err = s.marks.Get(ctx, id)
	if errors.Is(err, store.ErrBadMark) {
		s.log.Error("the head mark of an account fails its MAC: the head marks file was changed; refusing to serve the account", "account", id, "err", err)
		s.metrics.integrityFailures.Add(1)
		return h, false, &inconsistentError{account: id, err: err}
	}
	return h, ok, err
}

// below reports whether h is lower than the mark m, or another head at
// the same sequence number.
func below(h, m store.Head) bool {
	return h.Seq < m.Seq || h.Seq == m.Seq && h.Hash != m.Hash
}

// rolledBack reports (once per database head: the failure is cached)
// a head below the account's mark.
func (s *Server) rolledBack(acct store.Account, mk store.Head) error {
	if c := s.cache.get(acct.ID); c != nil && c.account.Head == acct.Head {
		var ce *inconsistentError
		if errors.As(c.err, &ce) {
			return c.err
		}
	}
	err := &inconsistentError{account: acct.ID, err: fmt.Errorf("the database's head is seq %d (%s), but this instance verified seq %d (%s): the database was rolled back or changed behind the server",
		acct.Head.Seq, acct.Head.Hash, mk.Seq, mk.Hash)}
	s.log.Error(inconsistentLog, "account", acct.ID, "head_seq", acct.Head.Seq, "verified_seq", mk.Seq, "err", err.err)
	s.metrics.integrityFailures.Add(1)
	s.cache.put(acct.ID, &verified{account: acct, err: err})
	return err
}

// verifyStored reads the links up to acct's head and verifies them, from
// the cached state c when it is a prefix of the chain. mk, when set, is
// the account's mark: the link stored at its sequence number must be the
// marked one.
func (s *Server) verifyStored(ctx context.Context, acct store.Account, c *verified, mk *store.Head) (*verified, error) {
	var (
		from   *chain.State
		hashes []chain.Hash
		after  = int64(-1)
	)
	if c != nil && c.err == nil && c.account.Head.Seq < acct.Head.Seq {
		from, after = c.state, int64(c.account.Head.Seq)
		hashes = c.hashes[:len(c.hashes):len(c.hashes)] // appends copy
	}
	// One row more than the head needs: a row above the head is a head
	// moved back behind the server (the rows of an append and its head
	// move commit together).
	want := int64(acct.Head.Seq) - after
	rows, err := s.store.Links(ctx, acct.ID, after, int(want+1))
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return &integrityError{account: acct.ID, err: fmt.Errorf(format, args...)}
	}
	if int64(len(rows)) > want {
		above := rows[want].Seq
		rows = rows[:want]
		// An append that committed after the head was read is not an
		// inconsistency: its head is visible by now.
		cur, err := s.store.Account(ctx, acct.ID)
		if err != nil {
			return nil, err
		}
		if cur.Head.Seq < above {
			return nil, &inconsistentError{account: acct.ID, err: fmt.Errorf("a link row at seq %d is stored above the account's head seq %d: the head was moved back behind the server", above, cur.Head.Seq)}
		}
	}
	if int64(len(rows)) != want {
		return nil, fail("the account's head is seq %d but links up to seq %d are stored", acct.Head.Seq, int64(len(rows))+after)
	}
	now := s.now()
	st := from
	for start := 0; start < len(rows); start += chain.MaxLinksPerCall {
		end := min(start+chain.MaxLinksPerCall, len(rows))
		parsed := make([]*chain.Link, 0, end-start)
		for _, r := range rows[start:end] {
			if mk != nil && r.Seq == mk.Seq && r.Hash != mk.Hash {
				return nil, &inconsistentError{account: acct.ID, err: fmt.Errorf("the link stored at seq %d is %s, but this instance verified %s there: the chain was replaced behind the server", r.Seq, r.Hash, mk.Hash)}
			}
			l, err := chain.ParseLink(r.Data)
			if err != nil {
				return nil, fail("link seq %d: %w", r.Seq, err)
			}
			if l.Seq() != r.Seq || l.Hash().String() != r.Hash || l.Type().String() != r.Type {
				return nil, fail("link row seq %d does not match the link it holds (seq %d, %s, %s)", r.Seq, l.Seq(), l.Type(), l.Hash())
			}
			parsed = append(parsed, l)
			hashes = append(hashes, l.Hash())
		}
		if st, err = chain.VerifyChain(st, parsed, now, s.verifyOpts()...); err != nil {
			return nil, fail("%w", err)
		}
	}
	if st == nil {
		return nil, fail("no links stored")
	}
	if st.Head().Hash.String() != acct.Head.Hash || st.Head().Seq != acct.Head.Seq {
		return nil, fail("verified head %d/%s differs from the account's head %d/%s", st.Head().Seq, st.Head().Hash, acct.Head.Seq, acct.Head.Hash)
	}
	if st.Account().String() != acct.ID {
		return nil, fail("the chain is of account %s", st.Account())
	}
	return &verified{account: acct, state: st, hashes: hashes}, nil
}

func (s *Server) now() time.Time { return s.cfg.Clock() }
