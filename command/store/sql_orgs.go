package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

func (s *sqlStore) CreateOrg(ctx context.Context, o Org, audit ...AuditEntry) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO orgs (id, name, admin_key, admin_key_id, admin_token_hash, policy, created_at) VALUES (?,?,?,?,?,?,?)`,
			o.ID, o.Name, o.AdminKey, o.AdminKeyID, o.AdminTokenHash, o.Policy, tn(o.CreatedAt))
		if err != nil {
			if s.d.classify(err) == kindUnique {
				return fmt.Errorf("%w: organisation %q", ErrExists, o.Name)
			}
			return err
		}
		return s.addAudit(ctx, tx, audit)
	})
}

const orgCols = `id, name, admin_key, admin_key_id, admin_token_hash, policy, created_at`

func (s *sqlStore) scanOrg(r *sql.Row) (Org, error) {
	var o Org
	var created int64
	if err := r.Scan(&o.ID, &o.Name, &o.AdminKey, &o.AdminKeyID, &o.AdminTokenHash, &o.Policy, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Org{}, fmt.Errorf("%w: organisation", ErrNotFound)
		}
		return Org{}, s.wrap(err)
	}
	o.CreatedAt = tt(created)
	return o, nil
}

func (s *sqlStore) Org(ctx context.Context, id string) (Org, error) {
	return s.scanOrg(s.row(ctx, s.db, `SELECT `+orgCols+` FROM orgs WHERE id = ?`, id))
}

func (s *sqlStore) OrgByName(ctx context.Context, name string) (Org, error) {
	return s.scanOrg(s.row(ctx, s.db, `SELECT `+orgCols+` FROM orgs WHERE name = ?`, name))
}

func (s *sqlStore) OrgByTokenHash(ctx context.Context, hash []byte) (Org, error) {
	return s.scanOrg(s.row(ctx, s.db, `SELECT `+orgCols+` FROM orgs WHERE admin_token_hash = ?`, hash))
}

func (s *sqlStore) CreateInvite(ctx context.Context, inv Invite, audit ...AuditEntry) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, `INSERT INTO invites (code_hash, org_id, account_name, created_at, expires_at) VALUES (?,?,?,?,?)`,
			inv.CodeHash, inv.OrgID, inv.AccountName, tn(inv.CreatedAt), tn(inv.ExpiresAt))
		switch s.d.classify(err) {
		case kindUnique:
			return fmt.Errorf("%w: invite", ErrExists)
		case kindForeignKey:
			return fmt.Errorf("%w: organisation %q", ErrNotFound, inv.OrgID)
		}
		if err != nil {
			return err
		}
		return s.addAudit(ctx, tx, audit)
	})
}

func (s *sqlStore) Invite(ctx context.Context, codeHash []byte) (Invite, error) {
	var inv Invite
	var created, expires, used int64
	err := s.row(ctx, s.db, `SELECT code_hash, org_id, account_name, created_at, expires_at, used_at, account_id FROM invites WHERE code_hash = ?`, codeHash).
		Scan(&inv.CodeHash, &inv.OrgID, &inv.AccountName, &created, &expires, &used, &inv.AccountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Invite{}, fmt.Errorf("%w: invite", ErrNotFound)
	}
	if err != nil {
		return Invite{}, s.wrap(err)
	}
	inv.CreatedAt, inv.ExpiresAt, inv.UsedAt = tt(created), tt(expires), tt(used)
	return inv, nil
}
