package store

import (
	"context"
	"fmt"
	"time"
)

// Witnessed recovery requests (translog.md, "Recovery on witnessed
// time"): for each recovery, the first checkpoint Command kept that
// includes the recovery_request leaf and carries every configured
// witness's cosignature. Schema version 4 adds the table and an index of
// recoveries by state, which every instance's recorder reads every log
// interval (recoveryWitnessMigration); nothing else in the schema changes.
var recoveryWitnessMigration = []string{
	`CREATE INDEX IF NOT EXISTS recoveries_state ON recoveries(state)`,
	`CREATE TABLE IF NOT EXISTS recovery_witnesses (
		recovery_id TEXT PRIMARY KEY,
		account_id TEXT NOT NULL,
		request_seq BIGINT NOT NULL,
		leaf_index BIGINT NOT NULL,
		tree_size BIGINT NOT NULL,
		checkpoint {blob} NOT NULL,
		witnessed_at BIGINT NOT NULL,
		created_at BIGINT NOT NULL)`,
}

// RecoveryWitness is the first witnessed checkpoint that includes a
// recovery request: the signed note with its cosignature lines, the size
// of its tree, the request's leaf index, and WitnessedAt, the newest of
// the configured witnesses' cosignature times on it.
type RecoveryWitness struct {
	RecoveryID  string
	AccountID   string
	RequestSeq  uint64
	LeafIndex   uint64
	TreeSize    uint64
	Checkpoint  []byte
	WitnessedAt time.Time
	CreatedAt   time.Time
}

// RecoveryToWitness is an open recovery (waiting or awaiting review)
// without a witnessed checkpoint yet: its request link's sequence number.
type RecoveryToWitness struct {
	RecoveryID string
	AccountID  string
	RequestSeq uint64
}

// RecoveryWitnesses is the storage of witnessed recovery requests of a
// Store from Open.
type RecoveryWitnesses struct{ s *sqlStore }

// RecoveryWitnessStorage returns st's witnessed recovery requests.
func RecoveryWitnessStorage(st Store) (*RecoveryWitnesses, error) {
	switch s := st.(type) {
	case *sqlStore:
		return &RecoveryWitnesses{s: s}, nil
	case *pgStore:
		return &RecoveryWitnesses{s: s.sqlStore}, nil
	}
	return nil, fmt.Errorf("store: %T has no recovery witness storage", st)
}

// Unwitnessed lists the open recoveries that have no witnessed
// checkpoint yet (at most 1000, oldest first).
func (r *RecoveryWitnesses) Unwitnessed(ctx context.Context) ([]RecoveryToWitness, error) {
	out, err := queryAll(ctx, r.s, r.s.db, func(sc scanner) (RecoveryToWitness, error) {
		var v RecoveryToWitness
		var seq int64
		err := sc.Scan(&v.RecoveryID, &v.AccountID, &seq)
		v.RequestSeq = uint64(seq)
		return v, err
	}, `SELECT e.id, e.account_id, l.seq FROM recoveries e
		JOIN links l ON l.account_id = e.account_id AND l.hash = e.id
		LEFT JOIN recovery_witnesses w ON w.recovery_id = e.id
		WHERE e.state IN (?, ?) AND w.recovery_id IS NULL
		ORDER BY e.requested_at, e.id LIMIT 1000`, RecoveryWaiting, RecoveryPendingReview)
	return out, r.s.wrap(err)
}

// Put keeps w unless a witnessed checkpoint of that recovery is already
// kept: the first one stays (a later one would only make the wait
// longer, never shorter). It reports whether w was kept.
func (r *RecoveryWitnesses) Put(ctx context.Context, w RecoveryWitness) (bool, error) {
	res, err := r.s.exec(ctx, r.s.db, `INSERT INTO recovery_witnesses (recovery_id, account_id, request_seq, leaf_index, tree_size, checkpoint, witnessed_at, created_at)
		VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (recovery_id) DO NOTHING`,
		w.RecoveryID, w.AccountID, int64(w.RequestSeq), int64(w.LeafIndex), int64(w.TreeSize), w.Checkpoint, tn(w.WitnessedAt), tn(w.CreatedAt))
	if err != nil {
		return false, r.s.wrap(err)
	}
	n, err := res.RowsAffected()
	return n == 1, r.s.wrap(err)
}

// Get returns the witnessed checkpoint kept for recovery id; ErrNotFound
// when there is none yet.
func (r *RecoveryWitnesses) Get(ctx context.Context, id string) (RecoveryWitness, error) {
	return queryOne(ctx, r.s, func(sc scanner) (RecoveryWitness, error) {
		var w RecoveryWitness
		var seq, idx, size, at, created int64
		if err := sc.Scan(&w.RecoveryID, &w.AccountID, &seq, &idx, &size, &w.Checkpoint, &at, &created); err != nil {
			return RecoveryWitness{}, err
		}
		w.RequestSeq, w.LeafIndex, w.TreeSize, w.WitnessedAt, w.CreatedAt = uint64(seq), uint64(idx), uint64(size), tt(at), tt(created)
		return w, nil
	}, "witnessed checkpoint of recovery "+id, `SELECT recovery_id, account_id, request_seq, leaf_index, tree_size, checkpoint, witnessed_at, created_at FROM recovery_witnesses WHERE recovery_id = ?`, id)
}
