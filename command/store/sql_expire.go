package store

import (
	"context"
	"database/sql"
	"time"
)

func (s *sqlStore) Expire(ctx context.Context, now time.Time) ([]string, error) {
	var expired []string
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		expired = expired[:0]
		type row struct {
			id, account, device, org string
			version                  int64
		}
		todo, err := queryAll(ctx, s, tx, func(sc scanner) (r row, err error) {
			err = sc.Scan(&r.id, &r.account, &r.device, &r.version, &r.org)
			return r, err
		}, `SELECT e.id, e.account_id, e.device_id, e.version, a.org_id FROM enrollments e JOIN accounts a ON a.id = e.account_id
			WHERE e.state IN (?,?,?) AND e.expires_at <= ? ORDER BY e.expires_at LIMIT 500`,
			EnrollPending, EnrollDeviceApproved, EnrollApproved, tn(now))
		if err != nil {
			return err
		}
		for _, r := range todo {
			res, err := s.exec(ctx, tx, `UPDATE enrollments SET state = ?, version = version + 1 WHERE id = ? AND version = ?`, EnrollExpired, r.id, r.version)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				continue
			}
			expired = append(expired, r.id)
			err = s.addAudit(ctx, tx, []AuditEntry{{Time: now, Actor: "system", Action: "enrollment.expire",
				OrgID: r.org, AccountID: r.account, DeviceID: r.device, Detail: "request " + r.id + " expired"}})
			if err != nil {
				return err
			}
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM tokens WHERE expires_at <= ?`, tn(now)); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `DELETE FROM challenges WHERE expires_at <= ?`, tn(now))
		return err
	})
	return expired, err
}
