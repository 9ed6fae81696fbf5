package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/envelope"
)

// Replay protection. A device opens each envelope at most once, and only
// within ReplayWindow of the time its sender signed into it: it remembers
// the ids of the envelopes it opened (and, per calling account, the call
// ids whose keys it installed) in agent.db, for as long as their send time
// is inside the window. An envelope sent before the window, or later than
// MaxClockSkew ahead of this device's clock, is refused; so is one whose id
// is remembered. The set is bounded by MaxSeen entries: past it the oldest
// are forgotten. Whenever an id is forgotten (past the bound, or out of the
// window) its send time becomes a floor, at or below which everything is
// refused, so that forgetting never lets a replay through — not even after
// this device's clock is set back. An envelope is remembered only once it opened: one
// that fails (or is deferred) is not.
const (
	ReplayWindow = 14 * 24 * time.Hour
	MaxClockSkew = 15 * time.Minute
	MaxSeen      = 100_000
)

// Replay errors (the reason a refused envelope is skipped with).
var (
	// ErrReplay: this device already opened the envelope (or installed the
	// key of the call it sets up): a relay delivered it again.
	ErrReplay = errors.New("device: envelope already opened (a relay delivered it again)")
	// ErrOutsideWindow: the envelope's send time is outside the replay
	// window; the sender must send it again.
	ErrOutsideWindow = errors.New("device: envelope sent outside the replay window")
)

var (
	bucketSeen     = []byte("seen")      // key -> send time (ms, big endian)
	bucketSeenTime = []byte("seen_time") // send time (8) || key -> nothing
	bucketSeenMeta = []byte("seen_meta")
	keySeenFloor   = []byte("floor") // ms: sends at or before it are refused
	keySeenCount   = []byte("count")
)

// seenKeys are the replay-set keys of an envelope: its id, and for a call
// its call id under the calling account.
func seenKeys(p *envelope.Parsed) [][]byte {
	keys := [][]byte{append([]byte("m"), p.ID[:]...)}
	if p.Kind == envelope.KindCall {
		k := append([]byte("c"), p.FromAccount[:]...)
		keys = append(keys, append(k, p.CallID...))
	}
	return keys
}

func u64(v int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return b[:]
}

func (a *agentDB) maxSeen() int64 {
	if a.seenLimit > 0 {
		return a.seenLimit
	}
	return MaxSeen
}

// checkReplay refuses p if it is outside the window at now or already seen.
func (a *agentDB) checkReplay(p *envelope.Parsed, now time.Time) error {
	switch {
	case p.SentAt.Before(now.Add(-ReplayWindow)):
		return fmt.Errorf("%w: sent at %s, more than %v before this device's clock (%s); ask the sender to send it again",
			ErrOutsideWindow, p.SentAt.Format(time.RFC3339), ReplayWindow, now.UTC().Format(time.RFC3339))
	case p.SentAt.After(now.Add(MaxClockSkew)):
		return fmt.Errorf("%w: sent at %s, more than %v ahead of this device's clock (%s); check the clocks of both devices",
			ErrOutsideWindow, p.SentAt.Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339))
	}
	return a.db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketSeenMeta); m != nil {
			if f := m.Get(keySeenFloor); len(f) == 8 && p.SentAt.UnixMilli() <= int64(binary.BigEndian.Uint64(f)) {
				return fmt.Errorf("%w: sent at %s, before the oldest send this device still remembers; ask the sender to send it again",
					ErrOutsideWindow, p.SentAt.Format(time.RFC3339))
			}
		}
		b := tx.Bucket(bucketSeen)
		if b == nil {
			return nil
		}
		for i, k := range seenKeys(p) {
			if b.Get(k) != nil {
				if i == 0 {
					return fmt.Errorf("%w: envelope %x from account %s", ErrReplay, p.ID, p.FromAccount)
				}
				return fmt.Errorf("%w: the key of call %s from account %s is already installed", ErrReplay, p.CallID, p.FromAccount)
			}
		}
		return nil
	})
}

// markSeen remembers p as opened, in one transaction with forgetting what
// left the window at now and what exceeds MaxSeen.
func (a *agentDB) markSeen(p *envelope.Parsed, now time.Time) error {
	sent := p.SentAt.UnixMilli()
	return a.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSeen)
		if err != nil {
			return err
		}
		bt, err := tx.CreateBucketIfNotExists(bucketSeenTime)
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketSeenMeta)
		if err != nil {
			return err
		}
		var n int64
		if c := meta.Get(keySeenCount); len(c) == 8 {
			n = int64(binary.BigEndian.Uint64(c))
		}
		for _, k := range seenKeys(p) {
			if b.Get(k) != nil {
				continue
			}
			if err := b.Put(k, u64(sent)); err != nil {
				return err
			}
			if err := bt.Put(append(u64(sent), k...), nil); err != nil {
				return err
			}
			n++
		}
		cutoff := now.Add(-ReplayWindow).UnixMilli()
		c := bt.Cursor()
		for tk, _ := c.First(); tk != nil; tk, _ = c.First() {
			t := int64(binary.BigEndian.Uint64(tk[:8]))
			if t >= cutoff && n <= a.maxSeen() {
				break
			}
			// Whatever is forgotten — for the bound, or because it left the
			// window — is refused from here down, so that neither the bound
			// nor a clock set back later lets a forgotten id through.
			if err := meta.Put(keySeenFloor, u64(t)); err != nil {
				return err
			}
			if err := b.Delete(tk[8:]); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return meta.Put(keySeenCount, u64(n))
	})
}
