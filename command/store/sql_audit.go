package store

import (
	"context"
	"database/sql"
	"time"
)

func (s *sqlStore) addAudit(ctx context.Context, x execer, entries []AuditEntry) error {
	for _, e := range entries {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		_, err := s.exec(ctx, x, `INSERT INTO audit (time, actor, action, org_id, account_id, device_id, detail) VALUES (?,?,?,?,?,?,?)`,
			tn(e.Time), e.Actor, e.Action, e.OrgID, e.AccountID, e.DeviceID, e.Detail)
		if err != nil {
			return err
		}
	}
	return nil
}

// withAudit runs stmt, an INSERT or UPDATE, and stores audit with it in
// one transaction; it returns the rows stmt changed (audit is stored only
// when it changed some). On PostgreSQL that is one statement (stmt in a
// WITH clause feeding the audit insert), one round trip instead of four.
func (s *sqlStore) withAudit(ctx context.Context, stmt string, args []any, audit []AuditEntry) (int64, error) {
	var n int64
	if s.d != postgresDialect || len(audit) == 0 {
		err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			res, err := s.exec(ctx, tx, stmt, args...)
			if err != nil {
				return err
			}
			if n, err = res.RowsAffected(); err != nil || n == 0 {
				return err
			}
			return s.addAudit(ctx, tx, audit)
		})
		return n, err
	}
	q := `WITH m AS (` + stmt + ` RETURNING 1) INSERT INTO audit (time, actor, action, org_id, account_id, device_id, detail) SELECT v.* FROM m CROSS JOIN (VALUES `
	for i, e := range audit {
		if i > 0 {
			q += `,`
		}
		q += `(?::bigint, ?::text, ?::text, ?::text, ?::text, ?::text, ?::text)`
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		args = append(args, tn(e.Time), e.Actor, e.Action, e.OrgID, e.AccountID, e.DeviceID, e.Detail)
	}
	q += `) AS v`
	res, err := s.exec(ctx, s.db, q, args...)
	if err != nil {
		return 0, s.wrap(err)
	}
	if n, err = res.RowsAffected(); err != nil {
		return 0, s.wrap(err)
	}
	return n / int64(len(audit)), nil
}

func (s *sqlStore) AddAudit(ctx context.Context, audit ...AuditEntry) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error { return s.addAudit(ctx, tx, audit) })
}

func (s *sqlStore) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q := `SELECT id, time, actor, action, org_id, account_id, device_id, detail FROM audit WHERE id > ?`
	args := []any{f.After}
	if f.OrgID != "" {
		q += ` AND org_id = ?`
		args = append(args, f.OrgID)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	out, err := queryAll(ctx, s, s.db, scanAudit, q, args...)
	return out, s.wrap(err)
}

func scanAudit(sc scanner) (AuditEntry, error) {
	var e AuditEntry
	var t int64
	if err := sc.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.OrgID, &e.AccountID, &e.DeviceID, &e.Detail); err != nil {
		return AuditEntry{}, err
	}
	e.Time = tt(t)
	return e, nil
}
