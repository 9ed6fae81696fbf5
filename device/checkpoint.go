package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/translog"
)

// The newest transparency-log checkpoint this device verified, and the
// log keys it pinned, in agent.db (client.LogStore).
var (
	bucketLog   = []byte("log")
	keyLogState = []byte("state")
)

var _ client.LogStore = (*agentDB)(nil)

// LogState implements client.LogStore: nil before the first checkpoint.
func (a *agentDB) LogState() (*client.LogState, error) {
	var out *client.LogState
	err := a.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		if b == nil {
			return nil
		}
		v := b.Get(keyLogState)
		if v == nil {
			return nil
		}
		out = new(client.LogState)
		return json.Unmarshal(v, out)
	})
	if err != nil {
		return nil, fmt.Errorf("device: the log checkpoint in %s: %w", AgentFile, err)
	}
	return out, nil
}

// SetLogState implements client.LogStore.
func (a *agentDB) SetLogState(s *client.LogState) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return a.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLog)
		if err != nil {
			return err
		}
		return b.Put(keyLogState, v)
	})
}

// SyncLog fetches the server's newest transparency-log checkpoint and
// accepts it only if it verifies under the log keys this device pinned
// (at its first sync, from the server's GET /v1/info) and is consistent
// with the checkpoint it verified before; the accepted one is kept in
// agent.db. A rolled-back log is client.ErrLogRollback, a forked one
// client.ErrLogFork, and nothing is stored then.
func (a *Agent) SyncLog(ctx context.Context) (translog.Checkpoint, error) {
	cl, err := a.client()
	if err != nil {
		return translog.Checkpoint{}, err
	}
	return a.syncLog(ctx, cl)
}

func (a *Agent) syncLog(ctx context.Context, cl *client.Client) (translog.Checkpoint, error) {
	c, err := cl.SyncLog(ctx, a.db, nil)
	if err != nil {
		return c, err
	}
	a.logSynced, a.noLog = time.Now(), false
	return c, nil
}

// DefaultLogWait is how long a chain sync waits, by default, for links
// that are not in the transparency log yet.
const DefaultLogWait = 5 * time.Second

const (
	// logReuse: a checkpoint this process accepted less than this long
	// ago serves the next chain sync without asking the server again
	// (a command that syncs several accounts syncs the log once).
	logReuse = time.Second
	// logPoll is the interval of log syncs while a sync waits for a
	// link to be logged.
	logPoll = 100 * time.Millisecond
)

// logFollowed reports whether chain syncs must go through the log: once
// this device pinned a log it always does (a server that stops
// publishing it is refused by SyncLog); before that, when the server
// advertises one (GET /v1/info, asked once per process).
func (a *Agent) logFollowed(ctx context.Context, cl *client.Client) (bool, error) {
	if a.noLog {
		return false, nil
	}
	st, err := a.db.LogState()
	if err != nil {
		return false, err
	}
	if st != nil {
		return true, nil
	}
	info, err := cl.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("device: asking the server whether it publishes a transparency log: %w", err)
	}
	if info.Log == nil {
		a.noLog = true
		return false, nil
	}
	return true, nil
}

// syncLogged syncs acct's chain through the log: it syncs the log (at
// most once per logReuse), then accepts the links that are in the
// verified checkpoint (client.SyncLogged). While a link is newer than the
// checkpoint (Command integrates within about a second; the link may be
// one this device has just appended) it syncs the log again every logPoll,
// for at most LogWait, keeping the logged prefix; after that the error
// names the link that is not logged yet.
func (a *Agent) syncLogged(ctx context.Context, cl *client.Client, acct chain.AccountID) (*chain.State, error) {
	wait := a.opts.LogWait
	if wait <= 0 {
		wait = DefaultLogWait
	}
	deadline := time.Now().Add(wait)
	for again := false; ; again = true {
		var st *chain.State
		var err error
		if again || a.logSynced.IsZero() || time.Since(a.logSynced) >= logReuse {
			_, err = a.syncLog(ctx, cl)
			if errors.Is(err, client.ErrNotFound) {
				// No checkpoint yet (a server that just started).
				err = fmt.Errorf("%w: the server has no log checkpoint yet: %w", client.ErrNotLoggedYet, err)
			}
		}
		if err == nil {
			st, err = cl.SyncLogged(ctx, acct, a.db, a.verified[acct], a.db, a.now(), a.verifyOpts()...)
			if err == nil || errors.Is(err, client.ErrNotLoggedYet) || errors.Is(err, client.ErrNotLogged) {
				a.remember(acct, st) // the links agent.db holds now
			}
		}
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, client.ErrNotLoggedYet) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("device: %w (waited %s for the log)", err, wait)
		}
		if !again {
			a.progress("waiting for the transparency log: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("device: %w (%w)", err, ctx.Err())
		case <-time.After(logPoll):
		}
	}
}
