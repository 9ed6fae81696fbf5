package store

import "strings"

// Schema migrations. Each migration moves the schema from version i to
// i+1; migrations are never edited once released, only appended. The
// statements use placeholders for the types that differ between engines:
//
//	{blob}    BLOB / BYTEA
//	{serial}  an auto-increasing 64-bit primary key
//
// A statement starting with {postgres} runs on PostgreSQL only.
var migrations = [][]string{
	1: {
		`CREATE TABLE orgs (
			id TEXT PRIMARY KEY,
			name TEXT NOT NULL UNIQUE,
			admin_key {blob} NOT NULL,
			admin_key_id TEXT NOT NULL,
			admin_token_hash {blob} NOT NULL UNIQUE,
			policy TEXT NOT NULL,
			created_at BIGINT NOT NULL)`,
		`CREATE TABLE invites (
			code_hash {blob} PRIMARY KEY,
			org_id TEXT NOT NULL REFERENCES orgs(id),
			account_name TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL,
			used_at BIGINT NOT NULL DEFAULT 0,
			account_id TEXT NOT NULL DEFAULT '')`,
		`CREATE TABLE accounts (
			id TEXT PRIMARY KEY,
			name TEXT NOT NULL UNIQUE,
			org_id TEXT NOT NULL DEFAULT '',
			head_seq BIGINT NOT NULL,
			head_hash TEXT NOT NULL,
			created_at BIGINT NOT NULL)`,
		`CREATE INDEX accounts_org ON accounts(org_id)`,
		`CREATE TABLE links (
			account_id TEXT NOT NULL REFERENCES accounts(id),
			seq BIGINT NOT NULL,
			hash TEXT NOT NULL,
			prev_hash TEXT NOT NULL,
			type TEXT NOT NULL,
			data {blob} NOT NULL,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (account_id, seq))`,
		`CREATE TABLE enrollments (
			id TEXT PRIMARY KEY,
			account_id TEXT NOT NULL REFERENCES accounts(id),
			type TEXT NOT NULL,
			state TEXT NOT NULL,
			body {blob} NOT NULL,
			device_id TEXT NOT NULL,
			device_name TEXT NOT NULL,
			protection TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL,
			head_seq BIGINT NOT NULL DEFAULT -1,
			head_hash TEXT NOT NULL DEFAULT '',
			approvals TEXT NOT NULL,
			reason TEXT NOT NULL DEFAULT '',
			version BIGINT NOT NULL)`,
		`CREATE INDEX enrollments_account ON enrollments(account_id, state)`,
		`CREATE INDEX enrollments_state ON enrollments(state, expires_at)`,
		`CREATE TABLE recoveries (
			id TEXT PRIMARY KEY,
			account_id TEXT NOT NULL REFERENCES accounts(id),
			device_id TEXT NOT NULL,
			state TEXT NOT NULL,
			requested_at BIGINT NOT NULL,
			not_before BIGINT NOT NULL,
			link {blob},
			reason TEXT NOT NULL DEFAULT '',
			version BIGINT NOT NULL)`,
		`CREATE INDEX recoveries_account ON recoveries(account_id, state)`,
		`CREATE TABLE envelopes (
			id {serial},
			account_id TEXT NOT NULL,
			device_id TEXT NOT NULL,
			from_account TEXT NOT NULL,
			from_device TEXT NOT NULL,
			kind TEXT NOT NULL,
			call_id TEXT NOT NULL DEFAULT '',
			sent_at BIGINT NOT NULL,
			ciphertext {blob} NOT NULL)`,
		`CREATE INDEX envelopes_recipient ON envelopes(account_id, device_id, id)`,
		`CREATE TABLE tokens (
			hash {blob} PRIMARY KEY,
			account_id TEXT NOT NULL,
			device_id TEXT NOT NULL,
			expires_at BIGINT NOT NULL)`,
		`CREATE INDEX tokens_device ON tokens(account_id, device_id)`,
		`CREATE INDEX tokens_expiry ON tokens(expires_at)`,
		`CREATE TABLE challenges (
			hash {blob} PRIMARY KEY,
			account_id TEXT NOT NULL,
			device_id TEXT NOT NULL,
			expires_at BIGINT NOT NULL)`,
		`CREATE INDEX challenges_expiry ON challenges(expires_at)`,
		`CREATE TABLE audit (
			id {serial},
			time BIGINT NOT NULL,
			actor TEXT NOT NULL,
			action TEXT NOT NULL,
			org_id TEXT NOT NULL DEFAULT '',
			account_id TEXT NOT NULL DEFAULT '',
			device_id TEXT NOT NULL DEFAULT '',
			detail TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX audit_org ON audit(org_id, id)`,
		`CREATE TABLE settings (
			key TEXT PRIMARY KEY,
			value TEXT NOT NULL)`,
	},
	// 2: PostgreSQL tells every instance when an account's head changes
	// (HeadWatcher). The trigger fires on every change of an account row,
	// whoever makes it, so a row changed behind Command is announced too.
	2: {
		`{postgres}CREATE OR REPLACE FUNCTION enigm_notify_head() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'DELETE' OR OLD.id IS DISTINCT FROM NEW.id THEN
				PERFORM pg_notify('` + HeadChannel + `', OLD.id);
			END IF;
			IF TG_OP <> 'DELETE' THEN
				PERFORM pg_notify('` + HeadChannel + `', NEW.id || ' ' || NEW.head_seq || ' ' || NEW.head_hash);
			END IF;
			RETURN NULL;
		END $$`,
		`{postgres}CREATE TRIGGER accounts_notify_head AFTER UPDATE OR DELETE ON accounts
			FOR EACH ROW EXECUTE FUNCTION enigm_notify_head()`,
		// Links, enrollment bodies and approvals, held recovery links and
		// envelope ciphertexts are keys, signatures and ciphertext, which
		// do not compress: store them out of line without trying (the
		// default tries pglz on every value over 2 KB, in vain, at a cost
		// larger than the rest of the insert).
		`{postgres}ALTER TABLE links ALTER COLUMN data SET STORAGE EXTERNAL`,
		`{postgres}ALTER TABLE enrollments ALTER COLUMN body SET STORAGE EXTERNAL`,
		`{postgres}ALTER TABLE enrollments ALTER COLUMN approvals SET STORAGE EXTERNAL`,
		`{postgres}ALTER TABLE recoveries ALTER COLUMN link SET STORAGE EXTERNAL`,
		`{postgres}ALTER TABLE envelopes ALTER COLUMN ciphertext SET STORAGE EXTERNAL`,
	},
	// 3: the transparency log's tables, with the links stored before it
	// as its first leaves (log.go).
	3: logMigration,
	// 4: the first witnessed checkpoint of each recovery request
	// (recovery_witness.go): a table of its own and an index of
	// recoveries by state; nothing else changes.
	4: recoveryWitnessMigration,
	// 5: the map of every account's newest link, committed by the log's
	// map leaves (log.go).
	5: mapMigration,
	// 6: a link's log leaf no longer holds a copy of the link's bytes
	// (log.go): the copies already stored are emptied.
	6: leafDataMigration,
}

// SchemaVersion is the schema version this code creates and reads.
var SchemaVersion = len(migrations) - 1

// ddl returns stmt for the engine, "" when it does not apply to it.
func (d *dialect) ddl(stmt string) string {
	if rest, ok := strings.CutPrefix(stmt, "{postgres}"); ok {
		if d != postgresDialect {
			return ""
		}
		stmt = rest
	}
	return strings.NewReplacer("{blob}", d.blob, "{serial}", d.serial).Replace(stmt)
}
