package device

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

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
	return cl.SyncLog(ctx, a.db, nil)
}
