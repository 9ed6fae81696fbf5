package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/command/store"
)

// Run runs the conformance suite. newDSN returns the data source name of a
// new, empty database of the engine under test for each subtest.
func Run(t *testing.T, newDSN func(t testing.TB) string) {
	tests := []struct {
		name string
		fn   func(t *testing.T, dsn string)
	}{
		{"Schema", testSchema},
		{"Orgs", testOrgs},
		{"Invites", testInvites},
		{"Accounts", testAccounts},
		{"Append", testAppend},
		{"AppendIsAtomic", testAppendAtomic},
		{"AppendRace", testAppendRace},
		{"HeadMovedBack", testHeadMovedBack},
		{"Enrollments", testEnrollments},
		{"Recoveries", testRecoveries},
		{"Envelopes", testEnvelopes},
		{"Secrets", testSecrets},
		{"Expire", testExpire},
		{"Audit", testAudit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDSN(t)) })
	}
}

// Engines runs fn on each storage engine, as the subtests "sqlite" and
// "postgres", each on a fresh database (SQLiteDSN, PostgresDSN).
func Engines(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLiteDSN(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, PostgresDSN(t)) })
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Open opens the store at dsn for the rest of the test.
func Open(t testing.TB, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func hx(label string) string {
	h := sha256.Sum256([]byte(label))
	return fmt.Sprintf("%x", h)
}

func devID(label string) string { return hx("dev:" + label)[:32] }

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// newAccount creates an account whose genesis hash is hx(name+"/0").
func newAccount(t *testing.T, s store.Store, name, org string) store.Account {
	t.Helper()
	g := store.Link{Seq: 0, Hash: hx(name + "/0"), Type: "genesis", Data: []byte("genesis of " + name), CreatedAt: t0}
	a := store.Account{ID: g.Hash, Name: name, OrgID: org, Head: store.Head{Seq: 0, Hash: g.Hash}, CreatedAt: t0}
	must(t, "create account "+name, s.CreateAccount(context.Background(), store.NewAccount{Account: a, Genesis: g}))
	return a
}

// newOrg creates the organisation "o" the tests' managed accounts belong
// to.
func newOrg(t *testing.T, s store.Store) {
	t.Helper()
	must(t, "org", s.CreateOrg(context.Background(), store.Org{ID: "o", Name: "o", AdminKey: []byte("k"), AdminKeyID: "k", AdminTokenHash: []byte("t"), Policy: "{}"}))
}

func link(account string, seq uint64, typ string) store.Link {
	prev := hx(fmt.Sprintf("%s/%d", account, seq-1))
	if seq == 1 {
		prev = account
	}
	return store.Link{Seq: seq, Hash: hx(fmt.Sprintf("%s/%d", account, seq)), Prev: prev, Type: typ,
		Data: []byte(fmt.Sprintf("link %d of %s", seq, account)), CreatedAt: t0}
}

func testSchema(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	if s.SchemaVersion() != store.SchemaVersion {
		t.Fatalf("schema version %d, want %d", s.SchemaVersion(), store.SchemaVersion)
	}
	must(t, "ping", s.Ping(ctx))
	id, err := s.Setting(ctx, "server_id", "first")
	must(t, "setting", err)
	if again, _ := s.Setting(ctx, "server_id", "second"); id != "first" || again != "first" {
		t.Fatalf("setting: %q then %q, want the first value kept", id, again)
	}
	newAccount(t, s, "alice", "")
	s.Close()
	// Opening again migrates nothing and keeps the data.
	s2 := Open(t, dsn)
	if _, err := s2.AccountByName(ctx, "alice"); err != nil {
		t.Fatalf("data after reopen: %v", err)
	}
	s2.Close()
	// A database from a newer binary is refused with a clear error.
	db := RawDB(t, dsn)
	if _, err := db.ExecContext(ctx, Rebind(dsn, `UPDATE schema_version SET version = ?`), store.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(ctx, dsn)
	wantErr(t, "open newer schema", err, store.ErrSchemaTooNew)
}

func testOrgs(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	o := store.Org{ID: "org1", Name: "acme", AdminKey: []byte("pub"), AdminKeyID: "kid", AdminTokenHash: []byte("tokhash"), Policy: `{"x":1}`, CreatedAt: t0}
	must(t, "create org", s.CreateOrg(ctx, o, store.AuditEntry{Time: t0, Actor: "cli", Action: "org.create", OrgID: "org1"}))
	wantErr(t, "same name", s.CreateOrg(ctx, store.Org{ID: "org2", Name: "acme", AdminKey: []byte("p"), AdminKeyID: "k", AdminTokenHash: []byte("t2"), Policy: "{}"}), store.ErrExists)
	wantErr(t, "same id", s.CreateOrg(ctx, store.Org{ID: "org1", Name: "other", AdminKey: []byte("p"), AdminKeyID: "k", AdminTokenHash: []byte("t3"), Policy: "{}"}), store.ErrExists)
	for _, get := range []func() (store.Org, error){
		func() (store.Org, error) { return s.Org(ctx, "org1") },
		func() (store.Org, error) { return s.OrgByName(ctx, "acme") },
		func() (store.Org, error) { return s.OrgByTokenHash(ctx, []byte("tokhash")) },
	} {
		got, err := get()
		must(t, "get org", err)
		if got.ID != o.ID || got.Name != o.Name || !bytes.Equal(got.AdminKey, o.AdminKey) || got.Policy != o.Policy || !got.CreatedAt.Equal(t0) || got.AdminKeyID != "kid" {
			t.Fatalf("org read back as %+v", got)
		}
	}
	_, err := s.OrgByTokenHash(ctx, []byte("other"))
	wantErr(t, "unknown token", err, store.ErrNotFound)
	_, err = s.Org(ctx, "nope")
	wantErr(t, "unknown org", err, store.ErrNotFound)
	entries, err := s.Audit(ctx, store.AuditFilter{OrgID: "org1"})
	must(t, "audit", err)
	if len(entries) != 1 || entries[0].Action != "org.create" {
		t.Fatalf("audit of org create: %+v", entries)
	}
}

func testInvites(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	newOrg(t, s)
	inv := store.Invite{CodeHash: []byte("code-hash"), OrgID: "o", AccountName: "bob", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, "invite", s.CreateInvite(ctx, inv))
	wantErr(t, "invite twice", s.CreateInvite(ctx, inv), store.ErrExists)
	wantErr(t, "invite to unknown org", s.CreateInvite(ctx, store.Invite{CodeHash: []byte("x"), OrgID: "nope", AccountName: "x", ExpiresAt: t0}), store.ErrNotFound)
	got, err := s.Invite(ctx, []byte("code-hash"))
	must(t, "get invite", err)
	if got.AccountName != "bob" || got.OrgID != "o" || !got.UsedAt.IsZero() || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("invite read back as %+v", got)
	}
	// Using the invite marks it used in the account's transaction.
	g := store.Link{Hash: hx("bob/0"), Type: "genesis", Data: []byte("g"), CreatedAt: t0}
	a := store.Account{ID: g.Hash, Name: "bob", OrgID: "o", Head: store.Head{Hash: g.Hash}, CreatedAt: t0}
	must(t, "managed account", s.CreateAccount(ctx, store.NewAccount{Account: a, Genesis: g, InviteHash: []byte("code-hash")}))
	got, _ = s.Invite(ctx, []byte("code-hash"))
	if got.UsedAt.IsZero() || got.AccountID != a.ID {
		t.Fatalf("invite not marked used: %+v", got)
	}
	// A second use fails and stores nothing.
	g2 := store.Link{Hash: hx("bob2/0"), Type: "genesis", Data: []byte("g2"), CreatedAt: t0}
	a2 := store.Account{ID: g2.Hash, Name: "bob2", OrgID: "o", Head: store.Head{Hash: g2.Hash}, CreatedAt: t0}
	wantErr(t, "invite used twice", s.CreateAccount(ctx, store.NewAccount{Account: a2, Genesis: g2, InviteHash: []byte("code-hash")}), store.ErrChanged)
	_, err = s.Account(ctx, a2.ID)
	wantErr(t, "account of a failed create", err, store.ErrNotFound)
	_, err = s.Invite(ctx, []byte("nope"))
	wantErr(t, "unknown invite", err, store.ErrNotFound)
}

func testAccounts(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	newOrg(t, s)
	a := newAccount(t, s, "alice", "")
	b := newAccount(t, s, "bob", "o")
	newAccount(t, s, "carol", "o")
	got, err := s.Account(ctx, a.ID)
	must(t, "get", err)
	if got.Name != "alice" || got.Head != a.Head || !got.CreatedAt.Equal(t0) || got.OrgID != "" {
		t.Fatalf("account read back as %+v", got)
	}
	got, err = s.AccountByName(ctx, "bob")
	must(t, "by name", err)
	if got.ID != b.ID || got.OrgID != "o" {
		t.Fatalf("by name: %+v", got)
	}
	_, err = s.AccountByName(ctx, "dave")
	wantErr(t, "unknown name", err, store.ErrNotFound)
	_, err = s.Account(ctx, hx("nope"))
	wantErr(t, "unknown id", err, store.ErrNotFound)
	// Name taken; same account id under another name.
	g := store.Link{Hash: hx("x/0"), Type: "genesis", Data: []byte("x")}
	err = s.CreateAccount(ctx, store.NewAccount{Account: store.Account{ID: g.Hash, Name: "alice", Head: store.Head{Hash: g.Hash}}, Genesis: g})
	wantErr(t, "name taken", err, store.ErrNameTaken)
	err = s.CreateAccount(ctx, store.NewAccount{Account: store.Account{ID: a.ID, Name: "alice2", Head: a.Head}, Genesis: store.Link{Hash: a.ID, Type: "genesis", Data: []byte("x")}})
	wantErr(t, "id exists", err, store.ErrExists)
	list, err := s.AccountsByOrg(ctx, "o")
	must(t, "by org", err)
	if len(list) != 2 || list[0].Name != "bob" || list[1].Name != "carol" {
		t.Fatalf("accounts of org: %+v", list)
	}
	links, err := s.Links(ctx, a.ID, -1, 0)
	must(t, "links", err)
	if len(links) != 1 || links[0].Seq != 0 || links[0].Hash != a.ID || string(links[0].Data) != "genesis of alice" {
		t.Fatalf("genesis link read back as %+v", links)
	}
}

func testAppend(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	a := newAccount(t, s, "alice", "")
	for seq := uint64(1); seq <= 5; seq++ {
		must(t, fmt.Sprintf("append %d", seq), s.Append(ctx, store.Append{AccountID: a.ID, Link: link(a.ID, seq, "rotate_keys")}))
	}
	got, err := s.Account(ctx, a.ID)
	must(t, "account", err)
	if got.Head.Seq != 5 || got.Head.Hash != link(a.ID, 5, "").Hash {
		t.Fatalf("head after 5 appends: %+v", got.Head)
	}
	// Wrong seq, wrong prev, a seq already taken: conflict.
	l := link(a.ID, 7, "x")
	wantErr(t, "gap", s.Append(ctx, store.Append{AccountID: a.ID, Link: l}), store.ErrConflict)
	l = link(a.ID, 6, "x")
	l.Prev = hx("other")
	wantErr(t, "wrong prev", s.Append(ctx, store.Append{AccountID: a.ID, Link: l}), store.ErrConflict)
	wantErr(t, "old seq", s.Append(ctx, store.Append{AccountID: a.ID, Link: link(a.ID, 3, "x")}), store.ErrConflict)
	wantErr(t, "unknown account", s.Append(ctx, store.Append{AccountID: hx("nope"), Link: link(hx("nope"), 1, "x")}), store.ErrNotFound)
	links, err := s.Links(ctx, a.ID, 2, 0)
	must(t, "links after 2", err)
	if len(links) != 3 || links[0].Seq != 3 || links[2].Seq != 5 {
		t.Fatalf("links after 2: %d", len(links))
	}
	links, err = s.Links(ctx, a.ID, -1, 2)
	must(t, "links limit", err)
	if len(links) != 2 || links[0].Seq != 0 {
		t.Fatalf("limit: %d links", len(links))
	}
	for i, l := range links {
		if l.Seq != uint64(i) {
			t.Fatalf("links out of order: %v", l.Seq)
		}
	}
}

// A head moved back behind the store (its columns set to an older link,
// the rows above left in place): the store reports the lower head as it
// is, Links still returns every row above it (Command's refusal of link
// rows above the head relies on this), and an append on the lower head
// whose position is still taken conflicts and changes nothing.
func testHeadMovedBack(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	a := newAccount(t, s, "alice", "")
	for seq := uint64(1); seq <= 3; seq++ {
		must(t, fmt.Sprintf("append %d", seq), s.Append(ctx, store.Append{AccountID: a.ID, Link: link(a.ID, seq, "rotate_keys")}))
	}
	db := RawDB(t, dsn)
	if _, err := db.ExecContext(ctx, Rebind(dsn, `UPDATE accounts SET head_seq = ?, head_hash = ? WHERE id = ?`), 1, link(a.ID, 1, "").Hash, a.ID); err != nil {
		t.Fatal(err)
	}
	got, err := s.Account(ctx, a.ID)
	must(t, "account", err)
	if got.Head.Seq != 1 || got.Head.Hash != link(a.ID, 1, "").Hash {
		t.Fatalf("head moved back reads as %+v", got.Head)
	}
	links, err := s.Links(ctx, a.ID, 0, 3)
	must(t, "links", err)
	if len(links) != 3 || links[0].Seq != 1 || links[2].Seq != 3 {
		t.Fatalf("links after seq 0 with the head at 1: %d rows", len(links))
	}
	fork := link(a.ID, 2, "revoke_device")
	fork.Hash = hx("fork")
	wantErr(t, "append over a stored row", s.Append(ctx, store.Append{AccountID: a.ID, Link: fork}), store.ErrConflict)
	if got, _ := s.Account(ctx, a.ID); got.Head.Seq != 1 {
		t.Fatalf("a failed append moved the head to %d", got.Head.Seq)
	}
}

// An Append whose side change fails stores nothing: not the link, not the
// head, not the audit entry; and a revocation's side changes happen with it.
func testAppendAtomic(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	a := newAccount(t, s, "alice", "")
	dev, other := devID("B"), devID("C")
	e := store.Enrollment{ID: "req1", AccountID: a.ID, Type: "add_device", State: store.EnrollApproved, Body: []byte("body"),
		DeviceID: dev, DeviceName: "B", Protection: "software", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, "enrollment", s.CreateEnrollment(ctx, e))
	stale := e
	stale.Version = 7 // not the stored version
	stale.State = store.EnrollCompleted
	err := s.Append(ctx, store.Append{AccountID: a.ID, Link: link(a.ID, 1, "add_device"), Enrollment: &stale,
		Audit: []store.AuditEntry{{Time: t0, Actor: "x", Action: "should.not.exist"}}})
	wantErr(t, "append with stale enrollment", err, store.ErrChanged)
	if got, _ := s.Account(ctx, a.ID); got.Head.Seq != 0 {
		t.Fatalf("head moved by a failed append: %+v", got.Head)
	}
	if links, _ := s.Links(ctx, a.ID, -1, 0); len(links) != 1 {
		t.Fatalf("failed append left %d links", len(links))
	}
	if entries, _ := s.Audit(ctx, store.AuditFilter{}); len(entries) != 0 {
		t.Fatalf("failed append left audit entries: %+v", entries)
	}
	// The same append from the right version completes the enrollment.
	e.State = store.EnrollCompleted
	must(t, "append completing enrollment", s.Append(ctx, store.Append{AccountID: a.ID, Link: link(a.ID, 1, "add_device"), Enrollment: &e}))
	if got, _ := s.Enrollment(ctx, "req1"); got.State != store.EnrollCompleted || got.Version != 1 {
		t.Fatalf("enrollment after append: %+v", got)
	}
	// A revocation deletes the device's envelopes and tokens and nobody else's.
	heads := map[string]uint64{a.ID: 1}
	envs := []store.Envelope{
		{AccountID: a.ID, DeviceID: dev, FromAccount: a.ID, FromDevice: other, Kind: "message", SentAt: t0, Ciphertext: []byte("1")},
		{AccountID: a.ID, DeviceID: other, FromAccount: a.ID, FromDevice: dev, Kind: "message", SentAt: t0, Ciphertext: []byte("2")},
	}
	must(t, "envelopes", s.PutEnvelopes(ctx, heads, envs))
	must(t, "token", s.PutToken(ctx, store.Secret{Hash: []byte("tB"), AccountID: a.ID, DeviceID: dev, ExpiresAt: t0.Add(time.Hour)}))
	must(t, "token", s.PutToken(ctx, store.Secret{Hash: []byte("tC"), AccountID: a.ID, DeviceID: other, ExpiresAt: t0.Add(time.Hour)}))
	rec := store.Recovery{ID: hx("rr"), AccountID: a.ID, DeviceID: devID("R"), State: store.RecoveryWaiting, RequestedAt: t0, NotBefore: t0.Add(time.Hour)}
	must(t, "revoke", s.Append(ctx, store.Append{AccountID: a.ID, Link: link(a.ID, 2, "revoke_device"),
		DropEnvelopes: []string{dev}, DropTokens: []string{dev}, NewRecovery: &rec,
		Audit: []store.AuditEntry{{Time: t0, Actor: "device", Action: "device.revoke", AccountID: a.ID, DeviceID: dev}}}))
	if got, _ := s.Envelopes(ctx, a.ID, dev, 10); len(got) != 0 {
		t.Fatalf("revoked device still has %d envelopes", len(got))
	}
	if got, _ := s.Envelopes(ctx, a.ID, other, 10); len(got) != 1 {
		t.Fatalf("other device lost its envelopes: %d", len(got))
	}
	_, err = s.Token(ctx, []byte("tB"))
	wantErr(t, "revoked device's token", err, store.ErrNotFound)
	_, err = s.Token(ctx, []byte("tC"))
	must(t, "other device's token", err)
	if got, err := s.Recovery(ctx, rec.ID); err != nil || got.State != store.RecoveryWaiting {
		t.Fatalf("recovery inserted with the append: %+v %v", got, err)
	}
	rec.State = store.RecoveryVetoed
	must(t, "veto", s.Append(ctx, store.Append{AccountID: a.ID, Link: link(a.ID, 3, "recovery_veto"), Recovery: &rec}))
	if got, _ := s.Recovery(ctx, rec.ID); got.State != store.RecoveryVetoed || got.Version != 1 {
		t.Fatalf("recovery after veto: %+v", got)
	}
	if entries, _ := s.Audit(ctx, store.AuditFilter{}); len(entries) != 1 || entries[0].Action != "device.revoke" {
		t.Fatalf("audit: %+v", entries)
	}
}

// Many writers race to append at the same head: exactly one wins each
// sequence number, and the stored chain has no gap, fork or interleaving.
func testAppendRace(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	a := newAccount(t, s, "race", "")
	const writers, rounds = 8, 12
	var mu sync.Mutex
	wins := map[uint64]int{}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				acct, err := s.Account(ctx, a.ID)
				if err != nil {
					t.Error(err)
					return
				}
				seq := acct.Head.Seq + 1
				l := store.Link{Seq: seq, Prev: acct.Head.Hash, Hash: hx(fmt.Sprintf("w%d/r%d/s%d", w, r, seq)), Type: "rotate_keys",
					Data: []byte(fmt.Sprintf("writer %d round %d", w, r)), CreatedAt: t0}
				err = s.Append(ctx, store.Append{AccountID: a.ID, Link: l})
				switch {
				case err == nil:
					mu.Lock()
					wins[seq]++
					mu.Unlock()
				case errors.Is(err, store.ErrConflict):
				default:
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	links, err := s.Links(ctx, a.ID, -1, 0)
	must(t, "links", err)
	if len(links) < 1+rounds {
		t.Fatalf("only %d links after the race", len(links))
	}
	for i, l := range links {
		if l.Seq != uint64(i) {
			t.Fatalf("link %d has seq %d", i, l.Seq)
		}
		if i > 0 {
			if l.Prev != links[i-1].Hash {
				t.Fatalf("seq %d does not follow seq %d", l.Seq, i-1)
			}
			if wins[l.Seq] != 1 {
				t.Fatalf("seq %d was won %d times", l.Seq, wins[l.Seq])
			}
		}
	}
	if len(wins) != len(links)-1 {
		t.Fatalf("%d successful appends but %d links", len(wins), len(links)-1)
	}
	acct, _ := s.Account(ctx, a.ID)
	if last := links[len(links)-1]; acct.Head.Seq != last.Seq || acct.Head.Hash != last.Hash {
		t.Fatalf("head %+v is not the last link %d/%s", acct.Head, last.Seq, last.Hash)
	}
}

func testEnrollments(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	newOrg(t, s)
	a := newAccount(t, s, "alice", "")
	b := newAccount(t, s, "bob", "o")
	mk := func(id, acct string, created time.Time) store.Enrollment {
		return store.Enrollment{ID: id, AccountID: acct, Type: "add_device", State: store.EnrollPending, Body: []byte("body " + id),
			DeviceID: devID(id), DeviceName: "dev " + id, Protection: "software", CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute)}
	}
	must(t, "e1", s.CreateEnrollment(ctx, mk("e1", a.ID, t0), store.AuditEntry{Time: t0, Actor: "anonymous", Action: "enrollment.request"}))
	must(t, "e2", s.CreateEnrollment(ctx, mk("e2", a.ID, t0.Add(time.Second))))
	must(t, "e3", s.CreateEnrollment(ctx, mk("e3", b.ID, t0)))
	wantErr(t, "duplicate id", s.CreateEnrollment(ctx, mk("e1", a.ID, t0)), store.ErrExists)
	wantErr(t, "unknown account", s.CreateEnrollment(ctx, mk("e4", hx("nope"), t0)), store.ErrNotFound)
	e, err := s.Enrollment(ctx, "e1")
	must(t, "get", err)
	if e.State != store.EnrollPending || e.Head != nil || len(e.Approvals) != 0 || string(e.Body) != "body e1" || !e.ExpiresAt.Equal(t0.Add(15*time.Minute)) || e.Version != 0 {
		t.Fatalf("enrollment read back as %+v", e)
	}
	// Approve from version 0; a second approval from the same read loses.
	approved := e
	approved.State = store.EnrollApproved
	approved.Head = &store.Head{Seq: 3, Hash: hx("h")}
	approved.Approvals = []store.Approval{{Role: "device", Signer: devID("A"), Signature: []byte("sig")}}
	must(t, "approve", s.UpdateEnrollment(ctx, approved))
	second := e
	second.State = store.EnrollApproved
	second.Approvals = []store.Approval{{Role: "device", Signer: devID("Z"), Signature: []byte("other")}}
	wantErr(t, "second concurrent approval", s.UpdateEnrollment(ctx, second), store.ErrChanged)
	e, _ = s.Enrollment(ctx, "e1")
	if e.State != store.EnrollApproved || e.Version != 1 || e.Head == nil || *e.Head != *approved.Head || len(e.Approvals) != 1 ||
		e.Approvals[0].Signer != devID("A") || string(e.Approvals[0].Signature) != "sig" {
		t.Fatalf("approved enrollment read back as %+v", e)
	}
	list, err := s.Enrollments(ctx, store.EnrollmentFilter{AccountID: a.ID})
	must(t, "by account", err)
	if len(list) != 2 || list[0].ID != "e1" || list[1].ID != "e2" {
		t.Fatalf("by account: %d", len(list))
	}
	list, err = s.Enrollments(ctx, store.EnrollmentFilter{AccountID: a.ID, States: []string{store.EnrollPending}})
	must(t, "by state", err)
	if len(list) != 1 || list[0].ID != "e2" {
		t.Fatalf("pending of alice: %+v", list)
	}
	list, err = s.Enrollments(ctx, store.EnrollmentFilter{OrgID: "o"})
	must(t, "by org", err)
	if len(list) != 1 || list[0].ID != "e3" {
		t.Fatalf("by org: %+v", list)
	}
	_, err = s.Enrollment(ctx, "nope")
	wantErr(t, "unknown", err, store.ErrNotFound)
}

func testRecoveries(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	newOrg(t, s)
	a := newAccount(t, s, "alice", "o")
	r := store.Recovery{ID: link(a.ID, 1, "").Hash, AccountID: a.ID, DeviceID: devID("R"), State: store.RecoveryWaiting, RequestedAt: t0, NotBefore: t0.Add(24 * time.Hour)}
	must(t, "request", s.Append(ctx, store.Append{AccountID: a.ID, Link: link(a.ID, 1, "recovery_request"), NewRecovery: &r}))
	got, err := s.Recovery(ctx, r.ID)
	must(t, "get", err)
	if got.State != store.RecoveryWaiting || !got.NotBefore.Equal(r.NotBefore) || got.Link != nil || got.DeviceID != r.DeviceID {
		t.Fatalf("recovery read back as %+v", got)
	}
	got.State, got.Link = store.RecoveryPendingReview, []byte("recover link")
	must(t, "pending review", s.UpdateRecovery(ctx, got))
	wantErr(t, "stale update", s.UpdateRecovery(ctx, got), store.ErrChanged)
	list, err := s.Recoveries(ctx, store.RecoveryFilter{OrgID: "o", States: []string{store.RecoveryPendingReview}})
	must(t, "list", err)
	if len(list) != 1 || string(list[0].Link) != "recover link" || list[0].Version != 1 {
		t.Fatalf("pending review: %+v", list)
	}
	list, _ = s.Recoveries(ctx, store.RecoveryFilter{OrgID: "other"})
	if len(list) != 0 {
		t.Fatalf("recoveries of another org: %d", len(list))
	}
	_, err = s.Recovery(ctx, "nope")
	wantErr(t, "unknown", err, store.ErrNotFound)
}

func testEnvelopes(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	a := newAccount(t, s, "alice", "")
	b := newAccount(t, s, "bob", "")
	d1, d2 := devID("1"), devID("2")
	var envs []store.Envelope
	for i := 0; i < 5; i++ {
		envs = append(envs, store.Envelope{AccountID: b.ID, DeviceID: d1, FromAccount: a.ID, FromDevice: d2, Kind: "message", SentAt: t0, Ciphertext: []byte{byte(i)}})
	}
	envs = append(envs, store.Envelope{AccountID: b.ID, DeviceID: d2, FromAccount: a.ID, FromDevice: d2, Kind: "call", CallID: "c1", SentAt: t0, Ciphertext: []byte("call")})
	must(t, "put", s.PutEnvelopes(ctx, map[string]uint64{b.ID: 0}, envs))
	// A head that moved since eligibility was checked: nothing is stored.
	must(t, "append", s.Append(ctx, store.Append{AccountID: b.ID, Link: link(b.ID, 1, "revoke_device")}))
	wantErr(t, "stale head", s.PutEnvelopes(ctx, map[string]uint64{b.ID: 0}, envs[:1]), store.ErrConflict)
	got, err := s.Envelopes(ctx, b.ID, d1, 3)
	must(t, "get", err)
	if len(got) != 3 || got[0].Ciphertext[0] != 0 || got[2].Ciphertext[0] != 2 || got[0].FromAccount != a.ID || !got[0].SentAt.Equal(t0) {
		t.Fatalf("envelopes: %+v", got)
	}
	all, _ := s.Envelopes(ctx, b.ID, d1, 100)
	if len(all) != 5 {
		t.Fatalf("stale put stored an envelope: %d", len(all))
	}
	other, _ := s.Envelopes(ctx, b.ID, d2, 100)
	if len(other) != 1 || other[0].Kind != "call" || other[0].CallID != "c1" {
		t.Fatalf("other device: %+v", other)
	}
	// A device acknowledges only its own envelopes.
	n, err := s.AckEnvelopes(ctx, b.ID, d1, []int64{got[0].ID, got[1].ID, other[0].ID})
	must(t, "ack", err)
	if n != 2 {
		t.Fatalf("acked %d, want 2", n)
	}
	if left, _ := s.Envelopes(ctx, b.ID, d2, 100); len(left) != 1 {
		t.Fatal("a device deleted another device's envelope")
	}
	if left, _ := s.Envelopes(ctx, b.ID, d1, 100); len(left) != 3 {
		t.Fatalf("%d left after ack", len(left))
	}
	if n, _ := s.AckEnvelopes(ctx, b.ID, d1, nil); n != 0 {
		t.Fatal("empty ack deleted something")
	}
}

func testSecrets(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	c := store.Secret{Hash: []byte("challenge"), AccountID: hx("a"), DeviceID: devID("d"), ExpiresAt: t0.Add(time.Minute)}
	must(t, "put challenge", s.PutChallenge(ctx, c))
	wantErr(t, "same challenge twice", s.PutChallenge(ctx, c), store.ErrExists)
	got, err := s.TakeChallenge(ctx, []byte("challenge"))
	must(t, "take", err)
	if got.AccountID != c.AccountID || got.DeviceID != c.DeviceID || !got.ExpiresAt.Equal(c.ExpiresAt) {
		t.Fatalf("challenge read back as %+v", got)
	}
	_, err = s.TakeChallenge(ctx, []byte("challenge"))
	wantErr(t, "take twice", err, store.ErrNotFound)
	// Concurrent takes: exactly one gets it.
	must(t, "put again", s.PutChallenge(ctx, c))
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.TakeChallenge(ctx, []byte("challenge")); err == nil {
				mu.Lock()
				taken++
				mu.Unlock()
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if taken != 1 {
		t.Fatalf("challenge taken %d times", taken)
	}
	tok := store.Secret{Hash: []byte("token"), AccountID: hx("a"), DeviceID: devID("d"), ExpiresAt: t0.Add(10 * time.Minute)}
	must(t, "put token", s.PutToken(ctx, tok))
	gt, err := s.Token(ctx, []byte("token"))
	must(t, "token", err)
	if gt.DeviceID != tok.DeviceID || !gt.ExpiresAt.Equal(tok.ExpiresAt) {
		t.Fatalf("token read back as %+v", gt)
	}
	_, err = s.Token(ctx, []byte("other"))
	wantErr(t, "unknown token", err, store.ErrNotFound)

	// A token with its account, read together.
	acct := newAccount(t, s, "holder", "")
	held := store.Secret{Hash: []byte("held"), AccountID: acct.ID, DeviceID: devID("h"), ExpiresAt: t0.Add(time.Hour)}
	must(t, "put token", s.PutToken(ctx, held))
	ht, ha, err := s.TokenAccount(ctx, []byte("held"))
	must(t, "token and account", err)
	if ht.DeviceID != held.DeviceID || !ht.ExpiresAt.Equal(held.ExpiresAt) || ha.ID != acct.ID || ha.Head != acct.Head || ha.Name != "holder" {
		t.Fatalf("token and account read back as %+v, %+v", ht, ha)
	}
	_, _, err = s.TokenAccount(ctx, []byte("token")) // its account does not exist
	wantErr(t, "token of an unknown account", err, store.ErrNotFound)
	_, _, err = s.TokenAccount(ctx, []byte("other"))
	wantErr(t, "unknown token", err, store.ErrNotFound)
}

func testExpire(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	a := newAccount(t, s, "alice", "")
	for i, st := range []string{store.EnrollPending, store.EnrollDeviceApproved, store.EnrollApproved, store.EnrollCompleted, store.EnrollDenied} {
		e := store.Enrollment{ID: fmt.Sprintf("old%d", i), AccountID: a.ID, Type: "add_device", State: st, Body: []byte("b"),
			DeviceID: devID(fmt.Sprint(i)), DeviceName: "d", Protection: "software", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
		must(t, "create", s.CreateEnrollment(ctx, e))
	}
	fresh := store.Enrollment{ID: "fresh", AccountID: a.ID, Type: "add_device", State: store.EnrollPending, Body: []byte("b"),
		DeviceID: devID("f"), DeviceName: "d", Protection: "software", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, "create fresh", s.CreateEnrollment(ctx, fresh))
	must(t, "token", s.PutToken(ctx, store.Secret{Hash: []byte("old"), AccountID: a.ID, DeviceID: devID("d"), ExpiresAt: t0.Add(time.Minute)}))
	must(t, "token", s.PutToken(ctx, store.Secret{Hash: []byte("new"), AccountID: a.ID, DeviceID: devID("d"), ExpiresAt: t0.Add(time.Hour)}))
	must(t, "challenge", s.PutChallenge(ctx, store.Secret{Hash: []byte("old"), AccountID: a.ID, DeviceID: devID("d"), ExpiresAt: t0.Add(time.Minute)}))
	ids, err := s.Expire(ctx, t0.Add(2*time.Minute))
	must(t, "expire", err)
	if len(ids) != 3 {
		t.Fatalf("expired %v, want the 3 open requests", ids)
	}
	for i, want := range []string{store.EnrollExpired, store.EnrollExpired, store.EnrollExpired, store.EnrollCompleted, store.EnrollDenied} {
		if e, _ := s.Enrollment(ctx, fmt.Sprintf("old%d", i)); e.State != want {
			t.Fatalf("old%d is %s, want %s", i, e.State, want)
		}
	}
	if e, _ := s.Enrollment(ctx, "fresh"); e.State != store.EnrollPending {
		t.Fatalf("fresh request is %s", e.State)
	}
	_, err = s.Token(ctx, []byte("old"))
	wantErr(t, "expired token", err, store.ErrNotFound)
	_, err = s.Token(ctx, []byte("new"))
	must(t, "live token", err)
	_, err = s.TakeChallenge(ctx, []byte("old"))
	wantErr(t, "expired challenge", err, store.ErrNotFound)
	entries, _ := s.Audit(ctx, store.AuditFilter{})
	if len(entries) != 3 || entries[0].Action != "enrollment.expire" {
		t.Fatalf("audit of expiry: %+v", entries)
	}
}

func testAudit(t *testing.T, dsn string) {
	ctx := context.Background()
	s := Open(t, dsn)
	for i := 0; i < 10; i++ {
		org := "o1"
		if i%2 == 1 {
			org = "o2"
		}
		must(t, "add", s.AddAudit(ctx, store.AuditEntry{Time: t0.Add(time.Duration(i) * time.Second), Actor: "admin:" + org, Action: fmt.Sprintf("a%d", i), OrgID: org, Detail: "d"}))
	}
	all, err := s.Audit(ctx, store.AuditFilter{})
	must(t, "all", err)
	if len(all) != 10 {
		t.Fatalf("%d entries", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatal("audit ids do not increase")
		}
	}
	o1, err := s.Audit(ctx, store.AuditFilter{OrgID: "o1", Limit: 3})
	must(t, "o1", err)
	if len(o1) != 3 || o1[0].Action != "a0" || o1[2].Action != "a4" || !o1[1].Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("o1 page: %+v", o1)
	}
	next, _ := s.Audit(ctx, store.AuditFilter{OrgID: "o1", After: o1[2].ID})
	if len(next) != 2 || next[0].Action != "a6" {
		t.Fatalf("o1 next page: %+v", next)
	}
}
