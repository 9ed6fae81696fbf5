package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

type sqlStore struct {
	db      *sql.DB
	d       *dialect
	version int
	w       *writer  // SQLite: the one writer, with group commit
	stmts   sync.Map // query -> *sql.Stmt
	// prepare: run statements as prepared statements kept per query
	// (SQLite, whose driver would parse every statement again; pgx keeps
	// its own statement cache on PostgreSQL).
	prepare bool
}

// prepared returns a prepared statement for q (database/sql prepares it
// again per connection as needed).
func (s *sqlStore) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, s.d.rebind(q))
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Engine() string     { return s.d.name }
func (s *sqlStore) SchemaVersion() int { return s.version }
func (s *sqlStore) Close() error {
	if s.w != nil {
		s.w.close()
	}
	s.stmts.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	return s.db.Close()
}

func (s *sqlStore) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return s.wrap(err)
	}
	return nil
}

// wrap classifies a database error: sentinels pass through, connection
// trouble becomes ErrUnavailable, anything else is returned as is.
func (s *sqlStore) wrap(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range []error{ErrNotFound, ErrExists, ErrNameTaken, ErrConflict, ErrChanged, ErrUnavailable, ErrSchemaTooNew} {
		if errors.Is(err, e) {
			return err
		}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if s.d.classify(err) == kindUnavailable {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("store: %w", err)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// stmt returns the prepared statement of q for x, or nil to run q as
// text (PostgreSQL, or when preparing fails: running it reports why).
func (s *sqlStore) stmt(ctx context.Context, x execer, q string) *sql.Stmt {
	if !s.prepare {
		return nil
	}
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil
	}
	if tx, ok := x.(*sql.Tx); ok {
		return tx.StmtContext(ctx, st)
	}
	if x != execer(s.db) {
		return nil
	}
	return st
}

func (s *sqlStore) exec(ctx context.Context, x execer, q string, args ...any) (sql.Result, error) {
	if st := s.stmt(ctx, x, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return x.ExecContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) query(ctx context.Context, x execer, q string, args ...any) (*sql.Rows, error) {
	if st := s.stmt(ctx, x, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return x.QueryContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) row(ctx context.Context, x execer, q string, args ...any) *sql.Row {
	if st := s.stmt(ctx, x, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return x.QueryRowContext(ctx, s.d.rebind(q), args...)
}

// tx runs fn in one transaction and commits: on SQLite through the writer
// (an immediate transaction, maybe shared with others in savepoints),
// on PostgreSQL on a connection of its own. fn uses the context it is
// given.
func (s *sqlStore) tx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if s.w != nil {
		return s.w.do(ctx, fn)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	if err := fn(ctx, tx); err != nil {
		tx.Rollback()
		return s.wrap(err)
	}
	return s.wrap(tx.Commit())
}

// write runs a write of one statement: through the writer on SQLite, as
// is on PostgreSQL (a statement is its own transaction there).
func (s *sqlStore) write(ctx context.Context, fn func(ctx context.Context, x execer) error) error {
	if s.w != nil {
		return s.w.do(ctx, func(ctx context.Context, tx *sql.Tx) error { return fn(ctx, tx) })
	}
	return s.wrap(fn(ctx, s.db))
}

// Times are stored as Unix nanoseconds; 0 is the zero time.
func tn(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func tt(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

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

// ---- organisations and invites -------------------------------------------

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

// ---- accounts and links -------------------------------------------------

func (s *sqlStore) CreateAccount(ctx context.Context, a NewAccount, audit ...AuditEntry) error {
	acct, g := a.Account, a.Genesis
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var one int
		err := s.row(ctx, tx, `SELECT 1 FROM accounts WHERE name = ?`, acct.Name).Scan(&one)
		switch {
		case err == nil:
			return fmt.Errorf("%w: %q", ErrNameTaken, acct.Name)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = s.exec(ctx, tx, `INSERT INTO accounts (id, name, org_id, head_seq, head_hash, created_at) VALUES (?,?,?,?,?,?)`,
			acct.ID, acct.Name, acct.OrgID, int64(g.Seq), g.Hash, tn(acct.CreatedAt))
		if err != nil {
			if s.d.classify(err) == kindUnique {
				if strings.Contains(err.Error(), "name") {
					return fmt.Errorf("%w: %q", ErrNameTaken, acct.Name)
				}
				return fmt.Errorf("%w: account %s", ErrExists, acct.ID)
			}
			return err
		}
		if err := s.insertLink(ctx, tx, acct.ID, g); err != nil {
			return err
		}
		if a.InviteHash != nil {
			res, err := s.exec(ctx, tx, `UPDATE invites SET used_at = ?, account_id = ? WHERE code_hash = ? AND used_at = 0`,
				tn(acct.CreatedAt), acct.ID, a.InviteHash)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n != 1 {
				return fmt.Errorf("%w: the invite was used meanwhile", ErrChanged)
			}
		}
		return s.addAudit(ctx, tx, audit)
	})
}

func (s *sqlStore) insertLink(ctx context.Context, x execer, account string, l Link) error {
	_, err := s.exec(ctx, x, `INSERT INTO links (account_id, seq, hash, prev_hash, type, data, created_at) VALUES (?,?,?,?,?,?,?)`,
		account, int64(l.Seq), l.Hash, l.Prev, l.Type, l.Data, tn(l.CreatedAt))
	if s.d.classify(err) == kindUnique {
		return fmt.Errorf("%w: account %s already has a link at seq %d", ErrConflict, account, l.Seq)
	}
	return err
}

const accountCols = `id, name, org_id, head_seq, head_hash, created_at`

func scanAccount(sc interface{ Scan(...any) error }) (Account, error) {
	var a Account
	var seq, created int64
	if err := sc.Scan(&a.ID, &a.Name, &a.OrgID, &seq, &a.Head.Hash, &created); err != nil {
		return Account{}, err
	}
	a.Head.Seq, a.CreatedAt = uint64(seq), tt(created)
	return a, nil
}

func (s *sqlStore) accountBy(ctx context.Context, col, v string) (Account, error) {
	st, err := s.prepared(ctx, `SELECT `+accountCols+` FROM accounts WHERE `+col+` = ?`)
	if err != nil {
		return Account{}, s.wrap(err)
	}
	a, err := scanAccount(st.QueryRowContext(ctx, v))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: account", ErrNotFound)
	}
	return a, s.wrap(err)
}

func (s *sqlStore) Account(ctx context.Context, id string) (Account, error) {
	return s.accountBy(ctx, "id", id)
}

func (s *sqlStore) AccountByName(ctx context.Context, name string) (Account, error) {
	return s.accountBy(ctx, "name", name)
}

func (s *sqlStore) AccountsByOrg(ctx context.Context, orgID string) ([]Account, error) {
	rows, err := s.query(ctx, s.db, `SELECT `+accountCols+` FROM accounts WHERE org_id = ? ORDER BY name`, orgID)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, a)
	}
	return out, s.wrap(rows.Err())
}

func (s *sqlStore) Links(ctx context.Context, accountID string, after int64, limit int) ([]Link, error) {
	q := `SELECT seq, hash, prev_hash, type, data, created_at FROM links WHERE account_id = ? AND seq > ? ORDER BY seq`
	args := []any{accountID, after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.query(ctx, s.db, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Link
	for rows.Next() {
		var l Link
		var seq, created int64
		if err := rows.Scan(&seq, &l.Hash, &l.Prev, &l.Type, &l.Data, &created); err != nil {
			return nil, s.wrap(err)
		}
		l.Seq, l.CreatedAt = uint64(seq), tt(created)
		out = append(out, l)
	}
	return out, s.wrap(rows.Err())
}

func (s *sqlStore) Append(ctx context.Context, a Append) error {
	if a.Link.Seq == 0 {
		return fmt.Errorf("%w: append at seq 0", ErrConflict)
	}
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// Compare and move the head in one statement: it locks the row
		// (PostgreSQL re-checks the condition on a row another writer
		// changed meanwhile), and moves it only from (seq-1, prev).
		res, err := s.exec(ctx, tx, `UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ? AND head_seq = ? AND head_hash = ?`,
			int64(a.Link.Seq), a.Link.Hash, a.AccountID, int64(a.Link.Seq)-1, a.Link.Prev)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n != 1 {
			var seq int64
			err := s.row(ctx, tx, `SELECT head_seq FROM accounts WHERE id = ?`, a.AccountID).Scan(&seq)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: account %s", ErrNotFound, a.AccountID)
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: head is seq %d, the link follows seq %d", ErrConflict, seq, a.Link.Seq-1)
		}
		if err := s.insertLink(ctx, tx, a.AccountID, a.Link); err != nil {
			return err
		}
		for _, dev := range a.DropEnvelopes {
			if _, err := s.exec(ctx, tx, `DELETE FROM envelopes WHERE account_id = ? AND device_id = ?`, a.AccountID, dev); err != nil {
				return err
			}
		}
		for _, dev := range a.DropTokens {
			if _, err := s.exec(ctx, tx, `DELETE FROM tokens WHERE account_id = ? AND device_id = ?`, a.AccountID, dev); err != nil {
				return err
			}
		}
		if a.Enrollment != nil {
			if err := s.updateEnrollment(ctx, tx, *a.Enrollment); err != nil {
				return err
			}
		}
		if a.NewRecovery != nil {
			if err := s.insertRecovery(ctx, tx, *a.NewRecovery); err != nil {
				return err
			}
		}
		if a.Recovery != nil {
			if err := s.updateRecovery(ctx, tx, *a.Recovery); err != nil {
				return err
			}
		}
		return s.addAudit(ctx, tx, a.Audit)
	})
}

// ---- enrollments --------------------------------------------------------

func (s *sqlStore) CreateEnrollment(ctx context.Context, e Enrollment, audit ...AuditEntry) error {
	ap, err := json.Marshal(orEmpty(e.Approvals))
	if err != nil {
		return err
	}
	hs, hh := headCols(e.Head)
	_, err = s.withAudit(ctx, `INSERT INTO enrollments (id, account_id, type, state, body, device_id, device_name, protection, created_at, expires_at, head_seq, head_hash, approvals, reason, version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		[]any{e.ID, e.AccountID, e.Type, e.State, e.Body, e.DeviceID, e.DeviceName, e.Protection, tn(e.CreatedAt), tn(e.ExpiresAt), hs, hh, string(ap), e.Reason, e.Version}, audit)
	switch s.d.classify(errors.Unwrap(err)) {
	case kindUnique:
		return fmt.Errorf("%w: enrollment %s", ErrExists, e.ID)
	case kindForeignKey:
		return fmt.Errorf("%w: account %s", ErrNotFound, e.AccountID)
	}
	return err
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

func orEmpty(a []Approval) []Approval {
	if a == nil {
		return []Approval{}
	}
	return a
}

func headCols(h *Head) (int64, string) {
	if h == nil {
		return -1, ""
	}
	return int64(h.Seq), h.Hash
}

const enrollmentCols = `e.id, e.account_id, e.type, e.state, e.body, e.device_id, e.device_name, e.protection, e.created_at, e.expires_at, e.head_seq, e.head_hash, e.approvals, e.reason, e.version`

func scanEnrollment(sc interface{ Scan(...any) error }) (Enrollment, error) {
	var e Enrollment
	var created, expires, hs int64
	var hh, ap string
	if err := sc.Scan(&e.ID, &e.AccountID, &e.Type, &e.State, &e.Body, &e.DeviceID, &e.DeviceName, &e.Protection, &created, &expires, &hs, &hh, &ap, &e.Reason, &e.Version); err != nil {
		return Enrollment{}, err
	}
	e.CreatedAt, e.ExpiresAt = tt(created), tt(expires)
	if hs >= 0 {
		e.Head = &Head{Seq: uint64(hs), Hash: hh}
	}
	if err := json.Unmarshal([]byte(ap), &e.Approvals); err != nil {
		return Enrollment{}, fmt.Errorf("enrollment %s: approvals column: %w", e.ID, err)
	}
	return e, nil
}

func (s *sqlStore) Enrollment(ctx context.Context, id string) (Enrollment, error) {
	e, err := scanEnrollment(s.row(ctx, s.db, `SELECT `+enrollmentCols+` FROM enrollments e WHERE e.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Enrollment{}, fmt.Errorf("%w: enrollment", ErrNotFound)
	}
	return e, s.wrap(err)
}

// filterSQL builds the WHERE clause shared by the enrollment and recovery
// listings (table alias e, joined to accounts a when by organisation).
func filterSQL(table, account, org string, states []string) (string, []any) {
	q := ` FROM ` + table + ` e`
	var where []string
	var args []any
	if org != "" {
		q += ` JOIN accounts a ON a.id = e.account_id`
		where = append(where, `a.org_id = ?`)
		args = append(args, org)
	}
	if account != "" {
		where = append(where, `e.account_id = ?`)
		args = append(args, account)
	}
	if len(states) > 0 {
		where = append(where, `e.state IN (`+placeholders(len(states))+`)`)
		for _, st := range states {
			args = append(args, st)
		}
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	return q, args
}

func (s *sqlStore) Enrollments(ctx context.Context, f EnrollmentFilter) ([]Enrollment, error) {
	from, args := filterSQL("enrollments", f.AccountID, f.OrgID, f.States)
	rows, err := s.query(ctx, s.db, `SELECT `+enrollmentCols+from+` ORDER BY e.created_at, e.id LIMIT 1000`, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Enrollment
	for rows.Next() {
		e, err := scanEnrollment(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, e)
	}
	return out, s.wrap(rows.Err())
}

func (s *sqlStore) UpdateEnrollment(ctx context.Context, e Enrollment, audit ...AuditEntry) error {
	q, args, err := updateEnrollmentSQL(e)
	if err != nil {
		return err
	}
	n, err := s.withAudit(ctx, q, args, audit)
	if err == nil && n != 1 {
		err = fmt.Errorf("%w: enrollment %s", ErrChanged, e.ID)
	}
	return err
}

func updateEnrollmentSQL(e Enrollment) (string, []any, error) {
	ap, err := json.Marshal(orEmpty(e.Approvals))
	if err != nil {
		return "", nil, err
	}
	hs, hh := headCols(e.Head)
	return `UPDATE enrollments SET state = ?, head_seq = ?, head_hash = ?, approvals = ?, reason = ?, version = ? WHERE id = ? AND version = ?`,
		[]any{e.State, hs, hh, string(ap), e.Reason, e.Version + 1, e.ID, e.Version}, nil
}

func (s *sqlStore) updateEnrollment(ctx context.Context, x execer, e Enrollment) error {
	q, args, err := updateEnrollmentSQL(e)
	if err != nil {
		return err
	}
	res, err := s.exec(ctx, x, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("%w: enrollment %s", ErrChanged, e.ID)
	}
	return nil
}

// ---- recoveries ---------------------------------------------------------

func (s *sqlStore) insertRecovery(ctx context.Context, x execer, r Recovery) error {
	_, err := s.exec(ctx, x, `INSERT INTO recoveries (id, account_id, device_id, state, requested_at, not_before, link, reason, version) VALUES (?,?,?,?,?,?,?,?,?)`,
		r.ID, r.AccountID, r.DeviceID, r.State, tn(r.RequestedAt), tn(r.NotBefore), r.Link, r.Reason, r.Version)
	if s.d.classify(err) == kindUnique {
		return fmt.Errorf("%w: recovery %s", ErrExists, r.ID)
	}
	return err
}

func (s *sqlStore) updateRecovery(ctx context.Context, x execer, r Recovery) error {
	res, err := s.exec(ctx, x, `UPDATE recoveries SET state = ?, link = ?, reason = ?, version = ? WHERE id = ? AND version = ?`,
		r.State, r.Link, r.Reason, r.Version+1, r.ID, r.Version)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("%w: recovery %s", ErrChanged, r.ID)
	}
	return nil
}

const recoveryCols = `e.id, e.account_id, e.device_id, e.state, e.requested_at, e.not_before, e.link, e.reason, e.version`

func scanRecovery(sc interface{ Scan(...any) error }) (Recovery, error) {
	var r Recovery
	var req, nb int64
	if err := sc.Scan(&r.ID, &r.AccountID, &r.DeviceID, &r.State, &req, &nb, &r.Link, &r.Reason, &r.Version); err != nil {
		return Recovery{}, err
	}
	r.RequestedAt, r.NotBefore = tt(req), tt(nb)
	return r, nil
}

func (s *sqlStore) Recovery(ctx context.Context, id string) (Recovery, error) {
	r, err := scanRecovery(s.row(ctx, s.db, `SELECT `+recoveryCols+` FROM recoveries e WHERE e.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Recovery{}, fmt.Errorf("%w: recovery", ErrNotFound)
	}
	return r, s.wrap(err)
}

func (s *sqlStore) Recoveries(ctx context.Context, f RecoveryFilter) ([]Recovery, error) {
	from, args := filterSQL("recoveries", f.AccountID, f.OrgID, f.States)
	rows, err := s.query(ctx, s.db, `SELECT `+recoveryCols+from+` ORDER BY e.requested_at DESC, e.id LIMIT 1000`, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Recovery
	for rows.Next() {
		r, err := scanRecovery(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, r)
	}
	return out, s.wrap(rows.Err())
}

func (s *sqlStore) UpdateRecovery(ctx context.Context, r Recovery, audit ...AuditEntry) error {
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := s.updateRecovery(ctx, tx, r); err != nil {
			return err
		}
		return s.addAudit(ctx, tx, audit)
	})
}

// ---- relay --------------------------------------------------------------

func (s *sqlStore) PutEnvelopes(ctx context.Context, heads map[string]uint64, envs []Envelope) error {
	accounts := make([]string, 0, len(heads))
	for a := range heads {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts) // one lock order for every writer
	return s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, a := range accounts {
			var seq int64
			err := s.row(ctx, tx, `SELECT head_seq FROM accounts WHERE id = ?`+s.d.lockShare, a).Scan(&seq)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: account %s", ErrNotFound, a)
			}
			if err != nil {
				return err
			}
			if uint64(seq) != heads[a] {
				return fmt.Errorf("%w: account %s is at seq %d, eligibility was checked at %d", ErrConflict, a, seq, heads[a])
			}
		}
		for _, e := range envs {
			if _, ok := heads[e.AccountID]; !ok {
				return fmt.Errorf("store: envelope for account %s without a checked head", e.AccountID)
			}
			_, err := s.exec(ctx, tx, `INSERT INTO envelopes (account_id, device_id, from_account, from_device, kind, call_id, sent_at, ciphertext) VALUES (?,?,?,?,?,?,?,?)`,
				e.AccountID, e.DeviceID, e.FromAccount, e.FromDevice, e.Kind, e.CallID, tn(e.SentAt), e.Ciphertext)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *sqlStore) Envelopes(ctx context.Context, accountID, deviceID string, limit int) ([]Envelope, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.query(ctx, s.db, `SELECT id, account_id, device_id, from_account, from_device, kind, call_id, sent_at, ciphertext FROM envelopes WHERE account_id = ? AND device_id = ? ORDER BY id LIMIT ?`,
		accountID, deviceID, limit)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Envelope
	for rows.Next() {
		var e Envelope
		var sent int64
		if err := rows.Scan(&e.ID, &e.AccountID, &e.DeviceID, &e.FromAccount, &e.FromDevice, &e.Kind, &e.CallID, &sent, &e.Ciphertext); err != nil {
			return nil, s.wrap(err)
		}
		e.SentAt = tt(sent)
		out = append(out, e)
	}
	return out, s.wrap(rows.Err())
}

func (s *sqlStore) AckEnvelopes(ctx context.Context, accountID, deviceID string, ids []int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := []any{accountID, deviceID}
	for _, id := range ids {
		args = append(args, id)
	}
	var n int64
	err := s.write(ctx, func(ctx context.Context, x execer) error {
		// The number of ids varies: run as text, not kept prepared.
		res, err := x.ExecContext(ctx, s.d.rebind(`DELETE FROM envelopes WHERE account_id = ? AND device_id = ? AND id IN (`+placeholders(len(ids))+`)`), args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// ---- tokens and challenges ----------------------------------------------

func (s *sqlStore) putSecret(ctx context.Context, table string, c Secret) error {
	return s.write(ctx, func(ctx context.Context, x execer) error {
		_, err := s.exec(ctx, x, `INSERT INTO `+table+` (hash, account_id, device_id, expires_at) VALUES (?,?,?,?)`,
			c.Hash, c.AccountID, c.DeviceID, tn(c.ExpiresAt))
		if s.d.classify(err) == kindUnique {
			return fmt.Errorf("%w: %s", ErrExists, table)
		}
		return err
	})
}

func (s *sqlStore) PutChallenge(ctx context.Context, c Secret) error {
	return s.putSecret(ctx, "challenges", c)
}

func (s *sqlStore) PutToken(ctx context.Context, t Secret) error {
	return s.putSecret(ctx, "tokens", t)
}

func (s *sqlStore) TakeChallenge(ctx context.Context, hash []byte) (Secret, error) {
	var c Secret
	var exp int64
	err := s.write(ctx, func(ctx context.Context, x execer) error {
		err := s.row(ctx, x, `DELETE FROM challenges WHERE hash = ? RETURNING hash, account_id, device_id, expires_at`, hash).
			Scan(&c.Hash, &c.AccountID, &c.DeviceID, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: challenge", ErrNotFound)
		}
		return err
	})
	if err != nil {
		return Secret{}, err
	}
	c.ExpiresAt = tt(exp)
	return c, nil
}

func (s *sqlStore) Token(ctx context.Context, hash []byte) (Secret, error) {
	var t Secret
	var exp int64
	st, err := s.prepared(ctx, `SELECT hash, account_id, device_id, expires_at FROM tokens WHERE hash = ?`)
	if err != nil {
		return Secret{}, s.wrap(err)
	}
	err = st.QueryRowContext(ctx, hash).Scan(&t.Hash, &t.AccountID, &t.DeviceID, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Secret{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	if err != nil {
		return Secret{}, s.wrap(err)
	}
	t.ExpiresAt = tt(exp)
	return t, nil
}

func (s *sqlStore) TokenAccount(ctx context.Context, hash []byte) (Secret, Account, error) {
	var t Secret
	var exp int64
	a, err := scanAccount(tokenAccountScan{s.row(ctx, s.db, `SELECT t.hash, t.account_id, t.device_id, t.expires_at, a.id, a.name, a.org_id, a.head_seq, a.head_hash, a.created_at
		FROM tokens t JOIN accounts a ON a.id = t.account_id WHERE t.hash = ?`, hash), []any{&t.Hash, &t.AccountID, &t.DeviceID, &exp}})
	if errors.Is(err, sql.ErrNoRows) {
		return Secret{}, Account{}, fmt.Errorf("%w: token", ErrNotFound)
	}
	if err != nil {
		return Secret{}, Account{}, s.wrap(err)
	}
	t.ExpiresAt = tt(exp)
	return t, a, nil
}

// tokenAccountScan scans the token columns in front of the account's.
type tokenAccountScan struct {
	r     *sql.Row
	first []any
}

func (x tokenAccountScan) Scan(dest ...any) error { return x.r.Scan(append(x.first, dest...)...) }

// ---- housekeeping and audit ---------------------------------------------

func (s *sqlStore) Expire(ctx context.Context, now time.Time) ([]string, error) {
	var expired []string
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		expired = expired[:0]
		rows, err := s.query(ctx, tx, `SELECT e.id, e.account_id, e.device_id, e.version, a.org_id FROM enrollments e JOIN accounts a ON a.id = e.account_id
			WHERE e.state IN (?,?,?) AND e.expires_at <= ? ORDER BY e.expires_at LIMIT 500`,
			EnrollPending, EnrollDeviceApproved, EnrollApproved, tn(now))
		if err != nil {
			return err
		}
		type row struct {
			id, account, device, org string
			version                  int64
		}
		var todo []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.account, &r.device, &r.version, &r.org); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
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
	rows, err := s.query(ctx, s.db, q, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.OrgID, &e.AccountID, &e.DeviceID, &e.Detail); err != nil {
			return nil, s.wrap(err)
		}
		e.Time = tt(t)
		out = append(out, e)
	}
	return out, s.wrap(rows.Err())
}

func (s *sqlStore) Setting(ctx context.Context, key, init string) (string, error) {
	var v string
	err := s.tx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		err := s.row(ctx, tx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			v = init
			_, err = s.exec(ctx, tx, `INSERT INTO settings (key, value) VALUES (?,?)`, key, init)
		}
		return err
	})
	if err != nil && s.d.classify(errors.Unwrap(err)) == kindUnique {
		// Another instance stored it first: read theirs.
		err = s.wrap(s.row(ctx, s.db, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v))
	}
	return v, err
}
