package store_test

import (
	"context"
	"testing"

	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/command/store/storetest"
)

// The dialect tells a broken primary key from another broken UNIQUE
// constraint by the engine's error codes (CreateAccount answers ErrExists
// or ErrNameTaken by it), and neither from other failures, on each engine.
func TestConstraintErrors(t *testing.T) {
	storetest.Engines(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := storetest.Open(t, dsn)
		const acct = `INSERT INTO accounts (id, name, org_id, head_seq, head_hash, created_at) VALUES (?,?,'',0,'h',0)`
		const link = `INSERT INTO links (account_id, seq, hash, prev_hash, type, data, created_at) VALUES (?,0,'h','','genesis',?,0)`
		if _, _, err := store.ConstraintOf(ctx, s, acct, "a1", "alice"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.ConstraintOf(ctx, s, link, "a1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			what               string
			q                  string
			args               []any
			unique, primaryKey bool
		}{
			{"account id taken", acct, []any{"a1", "bob"}, true, true},
			{"account name taken", acct, []any{"a2", "alice"}, true, false},
			{"link seq taken (two-column key)", link, []any{"a1", []byte("y")}, true, true},
			{"link of no account", link, []any{"nobody", []byte("y")}, false, false},
			{"not null", `INSERT INTO accounts (id, name, org_id, head_seq, head_hash, created_at) VALUES ('a3',NULL,'',0,'h',0)`, nil, false, false},
		} {
			unique, pk, err := store.ConstraintOf(ctx, s, c.q, c.args...)
			if err == nil {
				t.Errorf("%s: the insert succeeded", c.what)
				continue
			}
			if unique != c.unique || pk != c.primaryKey {
				t.Errorf("%s: unique %v, primary key %v; want %v, %v (%v)", c.what, unique, pk, c.unique, c.primaryKey, err)
			}
		}
	})
}
