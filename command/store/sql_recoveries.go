package store

import (
	"context"
	"database/sql"
	"fmt"
)

func (s *sqlStore) insertRecovery(ctx context.Context, x execer, r Recovery) error {
	_, err := s.exec(ctx, x, `INSERT INTO recoveries (id, account_id, device_id, state, requested_at, not_before, link, reason, version) VALUES (?,?,?,?,?,?,?,?,?)`,
		r.ID, r.AccountID, r.DeviceID, r.State, tn(r.RequestedAt), tn(r.NotBefore), r.Link, r.Reason, r.Version)
	if s.d.classify(err) == kindUnique {
		return fmt.Errorf("%w: recovery %s", ErrExists, r.ID)
	}
	return err
}

func (s *sqlStore) updateRecovery(ctx context.Context, x execer, r Recovery) error {
	return s.execOne(ctx, x, "recovery "+r.ID, `UPDATE recoveries SET state = ?, link = ?, reason = ?, version = ? WHERE id = ? AND version = ?`,
		r.State, r.Link, r.Reason, r.Version+1, r.ID, r.Version)
}

const recoveryCols = `e.id, e.account_id, e.device_id, e.state, e.requested_at, e.not_before, e.link, e.reason, e.version`

func scanRecovery(sc scanner) (Recovery, error) {
	var r Recovery
	var req, nb int64
	if err := sc.Scan(&r.ID, &r.AccountID, &r.DeviceID, &r.State, &req, &nb, &r.Link, &r.Reason, &r.Version); err != nil {
		return Recovery{}, err
	}
	r.RequestedAt, r.NotBefore = tt(req), tt(nb)
	return r, nil
}

func (s *sqlStore) Recovery(ctx context.Context, id string) (Recovery, error) {
	return queryOne(ctx, s, scanRecovery, "recovery", `SELECT `+recoveryCols+` FROM recoveries e WHERE e.id = ?`, id)
}

func (s *sqlStore) Recoveries(ctx context.Context, f RecoveryFilter) ([]Recovery, error) {
	from, args := filterSQL("recoveries", f.AccountID, f.OrgID, f.States)
	out, err := queryAll(ctx, s, s.db, scanRecovery, `SELECT `+recoveryCols+from+` ORDER BY e.requested_at DESC, e.id LIMIT 1000`, args...)
	return out, s.wrap(err)
}

func (s *sqlStore) UpdateRecovery(ctx context.Context, r Recovery, audit ...AuditEntry) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.updateRecovery(ctx, tx, r); err != nil {
			return err
		}
		return s.addAudit(ctx, tx, audit)
	})
}
