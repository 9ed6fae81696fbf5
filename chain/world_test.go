package chain

import (
	"crypto/ecdsa"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

// This file holds the deterministic test world the scenario language, the
// property tests and the vector generator share: keys derived from names,
// a clock, and builders for every link type.

// detKey signs deterministically so that generated vectors are
// reproducible.
type detKey struct{ k *hybrid.PrivateKey }

func (d detKey) Public() *hybrid.PublicKey { return d.k.Public() }
func (d detKey) Sign(ctx string, msg []byte) (*hybrid.Signature, error) {
	return d.k.SignDeterministic(ctx, msg)
}

// keys are the test world's keys, derived from names.
var keys = testkit.Keys{Domain: "enigm-chain-test"}

func testHybrid(label string) detKey             { return detKey{keys.Hybrid(label)} }
func testKEM(label string) hpke.PublicKey        { return keys.KEM(label) }
func testBinding(label string) *ecdsa.PrivateKey { return keys.P256(label) }

func testID(name string) DeviceID {
	h := sha256.Sum256([]byte("enigm-chain-test:id:" + name))
	return DeviceID(h[:DeviceIDSize])
}

// actor is a device of the test world, added to the chain or not.
type actor struct {
	name    string // unique in the test process: world name / short name
	short   string
	id      DeviceID
	idGen   int // identity key generation, bumped by rotate
	kemGen  int // KEM key generation, bumped by rotate
	level   Level
	binding *ecdsa.PrivateKey
	ev      *Evidence
}

func (a *actor) key() detKey { return testHybrid(fmt.Sprintf("%s/%d", a.name, a.idGen)) }
func (a *actor) kem() hpke.PublicKey {
	return testKEM(fmt.Sprintf("%s/%d", a.name, a.kemGen))
}

func (a *actor) device() Device {
	d := Device{ID: a.id, Name: "device " + a.short, Identity: a.key().Public(), KEM: a.kem().Bytes(), Level: a.level, Evidence: a.ev}
	if a.binding != nil {
		d.Binding = &a.binding.PublicKey
	}
	return d
}

// T0 is the test world's start time.
var T0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type world struct {
	name   string // distinguishes worlds (accounts) that share device names
	now    time.Time
	st     *State
	links  []*Link
	actors map[string]*actor
	recGen int
	attest AttestationVerifier
}

func newWorld(name string) *world {
	return &world{name: name, now: T0, actors: map[string]*actor{}}
}

func (w *world) actor(name string) *actor {
	if a, ok := w.actors[name]; ok {
		return a
	}
	a := &actor{name: w.name + "/" + name, short: name, id: testID(w.name + "/" + name), level: LevelSoftware}
	w.actors[name] = a
	return a
}

func (w *world) hw(name string) *actor {
	a := w.actor(name)
	a.level, a.binding = LevelHardwareTPM, testBinding(a.name)
	return a
}

func (w *world) org() detKey      { return testHybrid(w.name + "/org") }
func (w *world) recovery() detKey { return testHybrid(fmt.Sprintf("%s/recovery/%d", w.name, w.recGen)) }

func (w *world) opts() []Option {
	if w.attest != nil {
		return []Option{WithAttestationVerifier(w.attest)}
	}
	return nil
}

// apply applies l at the world's clock and keeps it when it verifies.
func (w *world) apply(l *Link) error {
	ns, err := Apply(w.st, l, w.now, w.opts()...)
	if err != nil {
		return err
	}
	w.st, w.links = ns, append(w.links, l)
	return nil
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

// ---- builders: each returns a signed link for the current head ----------

func (w *world) genesisLink(a *actor, p Policy, managed bool) *Link {
	g := &Genesis{Device: a.device(), Recovery: w.recovery().Public(), Policy: p}
	if managed {
		g.Org = &Org{ID: "example.org", AdminKey: w.org().Public()}
	}
	d := testkit.Must(NewGenesis(w.now, g))
	check(d.Sign(RoleSubject, a.key()))
	if a.binding != nil {
		check(d.SignBinding(a.binding, nil))
	}
	check(d.Sign(RoleNewRecovery, w.recovery()))
	if managed {
		check(d.Sign(RoleOrg, w.org()))
	}
	return testkit.Must(d.Link())
}

func nonceFor(label string) [NonceSize]byte {
	return [NonceSize]byte(keys.Seed("nonce:"+label, NonceSize))
}

// addDraft starts an add_device for b; approve with approveAdd.
func (w *world) addDraft(b *actor) *Draft {
	n := nonceFor(w.name + "/" + b.name)
	d := testkit.Must(NewDraft(w.st, w.now, &AddDevice{Device: b.device(), Nonce: n, PairingHash: PairingHash(n, "123456")}))
	return d
}

func (w *world) signSubject(d *Draft, b *actor) {
	check(d.Sign(RoleSubject, b.key()))
	if b.binding != nil {
		check(d.SignBinding(b.binding, nil))
	}
}

func (w *world) addLink(b, by *actor, withOrg bool) *Link {
	d := w.addDraft(b)
	if by != nil {
		check(d.SignDevice(by.id, by.key()))
	}
	w.signSubject(d, b)
	if withOrg {
		check(d.Sign(RoleOrg, w.org()))
	}
	return testkit.Must(d.Link())
}

func (w *world) revokeLink(target *actor, role Role, by *actor) *Link {
	d := testkit.Must(NewDraft(w.st, w.now, &RevokeDevice{ID: target.id, Reason: ReasonLost}))
	switch role {
	case RoleDevice:
		check(d.SignDevice(by.id, by.key()))
	case RoleOrg:
		check(d.Sign(RoleOrg, w.org()))
	case RoleRecovery:
		check(d.Sign(RoleRecovery, w.recovery()))
	}
	return testkit.Must(d.Link())
}

// rotateLink rotates a's identity and/or KEM key (a's generations are
// bumped only when the link applies; see step).
func (w *world) rotateLink(a *actor, identity, kem bool) *Link {
	next := *a
	next.idGen++
	next.kemGen++
	body := &RotateKeys{ID: a.id}
	if identity {
		body.Identity = next.key().Public()
	}
	if kem {
		body.KEM = next.kem().Bytes()
	}
	d := testkit.Must(NewDraft(w.st, w.now, body))
	check(d.SignDevice(a.id, a.key()))
	if identity {
		check(d.Sign(RoleSubject, next.key()))
	}
	if a.binding != nil {
		check(d.SignBinding(a.binding, nil))
	}
	return testkit.Must(d.Link())
}

func (w *world) replaceLink(old, b *actor, withOrg bool) *Link {
	n := nonceFor(w.name + "/" + b.name)
	d := testkit.Must(NewDraft(w.st, w.now, &ReplaceDevice{Old: old.id, Device: b.device(), Nonce: n, PairingHash: PairingHash(n, "654321")}))
	check(d.SignDevice(old.id, old.key()))
	w.signSubject(d, b)
	if withOrg {
		check(d.Sign(RoleOrg, w.org()))
	}
	return testkit.Must(d.Link())
}

func (w *world) requestLink(b *actor) *Link {
	d := testkit.Must(NewDraft(w.st, w.now, &RecoveryRequest{Device: b.device()}))
	check(d.Sign(RoleRecovery, w.recovery()))
	w.signSubject(d, b)
	return testkit.Must(d.Link())
}

func (w *world) pendingHash() Hash {
	if p, ok := w.st.PendingRecovery(); ok {
		return p.Request
	}
	// No pending request: name the last request link built, if any.
	for i := len(w.links) - 1; i >= 0; i-- {
		if w.links[i].typ == TypeRecoveryRequest {
			return w.links[i].hash
		}
	}
	return Hash{}
}

func (w *world) vetoLink(by *actor) *Link {
	d := testkit.Must(NewDraft(w.st, w.now, &RecoveryVeto{Request: w.pendingHash()}))
	check(d.SignDevice(by.id, by.key()))
	return testkit.Must(d.Link())
}

func (w *world) recoverLink(b *actor, withOrg bool) *Link {
	d := testkit.Must(NewDraft(w.st, w.now, &Recover{Request: w.pendingHash()}))
	check(d.Sign(RoleSubject, b.key()))
	if withOrg {
		check(d.Sign(RoleOrg, w.org()))
	}
	return testkit.Must(d.Link())
}

func (w *world) rotateRecoveryLink(by *actor) *Link {
	next := testHybrid(fmt.Sprintf("%s/recovery/%d", w.name, w.recGen+1))
	d := testkit.Must(NewDraft(w.st, w.now, &RotateRecovery{Recovery: next.Public()}))
	check(d.SignDevice(by.id, by.key()))
	check(d.Sign(RoleNewRecovery, next))
	return testkit.Must(d.Link())
}

func (w *world) policyLink(p Policy, signer Signer) *Link {
	d := testkit.Must(NewDraft(w.st, w.now, &SetPolicy{Policy: p}))
	check(d.Sign(RoleOrg, signer))
	return testkit.Must(d.Link())
}

// ---- the scenario language ----------------------------------------------
//
// A scenario is statements separated by ';' or newlines. A statement that
// ends in "!ErrName" must fail with that error (and changes nothing);
// every other statement must succeed.
//
//	genesis A [hw] [managed] [admin-approval] [admin-review] [delay=24h] [min=LEVEL]
//	add B by A [hw] [org]        add B (no approver: a ghost)   add B by org
//	revoke B by A | by org | by recovery
//	rotate A [identity|kem]      (default: both)
//	replace A with C [hw] [org]
//	request D [hw]               (recovery_request signed by the recovery key)
//	veto by B
//	recover D [org]
//	rotate-recovery by A
//	policy [admin-approval] [admin-review] [delay=DUR] [min=LEVEL] [witness] [witness-age=DUR]
//	                             (set_policy by the organisation; witness: a one-witness tlog-policy)
//	policy-by A ...              (set_policy signed by device A's key in the org role)
//	wait DUR                     (advance the clock)
//	expect active A C            (exactly these devices are active)
//	expect revoked B | expect retired A | expect pending D | expect no-pending

// codeByGoName returns the code a scenario or chain/testdata/vectors.json
// names by its Go identifier ("ErrDeviceIDReused"). The identifier is
// "Err" and the wire name without underscores, compared ignoring case
// ("device_id_reused"); TestCodeTable checks that this names every code
// and only one.
func codeByGoName(n string) (Code, bool) {
	rest, ok := strings.CutPrefix(n, "Err")
	if !ok {
		return 0, false
	}
	for _, c := range Codes() {
		if strings.EqualFold(rest, strings.ReplaceAll(c.String(), "_", "")) {
			return c, true
		}
	}
	return 0, false
}

// isCode reports whether err wraps the code named by its Go identifier.
func isCode(err error, goName string) bool {
	c, ok := codeByGoName(goName)
	return ok && errors.Is(err, c)
}

// sentinels returns the wire names of the codes err wraps, sorted.
func sentinels(err error) []string {
	var out []string
	for _, c := range Codes() {
		if errors.Is(err, c) {
			out = append(out, c.String())
		}
	}
	sort.Strings(out)
	return out
}

func parsePolicyFlags(p Policy, flags []string) (Policy, error) {
	for _, f := range flags {
		name, val, _ := strings.Cut(f, "=")
		var err error
		switch name {
		case "admin-approval":
			p.RequireAdminApproval = true
		case "admin-review":
			p.RequireAdminReview = true
		case "attestation":
			p.RequireVerifiedAttestation = true
		case "delay":
			p.RecoveryDelay, err = time.ParseDuration(val)
		case "min":
			p.MinLevel = Level(val)
		case "witness":
			p.WitnessPolicy = goldenWitnessPolicy
		case "witness-age":
			p.WitnessMaxAge, err = time.ParseDuration(val)
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

func has(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// step runs one statement. It returns the link it built (nil for
// statements that build none) and the error of applying it.
func (w *world) step(stmt string) error {
	f := strings.Fields(stmt)
	if len(f) == 0 {
		return nil
	}
	switch f[0] {
	case "genesis":
		a := w.actor(f[1])
		if has(f, "hw") {
			a = w.hw(f[1])
		}
		p, err := parsePolicyFlags(DefaultPolicy(), f[2:])
		if err != nil {
			return err
		}
		return w.apply(w.genesisLink(a, p, has(f, "managed")))
	case "add":
		b := w.actor(f[1])
		if has(f, "hw") {
			b = w.hw(f[1])
		}
		var by *actor
		org := has(f, "org")
		if len(f) > 3 && f[2] == "by" {
			if f[3] == "org" {
				org = true
			} else {
				by = w.actor(f[3])
			}
		}
		return w.apply(w.addLink(b, by, org))
	case "revoke":
		if len(f) < 4 {
			return fmt.Errorf("revoke needs 'by'")
		}
		t := w.actor(f[1])
		switch f[3] {
		case "org":
			return w.apply(w.revokeLink(t, RoleOrg, nil))
		case "recovery":
			return w.apply(w.revokeLink(t, RoleRecovery, nil))
		}
		return w.apply(w.revokeLink(t, RoleDevice, w.actor(f[3])))
	case "rotate":
		a := w.actor(f[1])
		id, kem := !has(f, "kem") || has(f, "identity"), !has(f, "identity") || has(f, "kem")
		if err := w.apply(w.rotateLink(a, id, kem)); err != nil {
			return err
		}
		if id {
			a.idGen++
		}
		if kem {
			a.kemGen++
		}
		return nil
	case "replace":
		b := w.actor(f[3])
		if has(f, "hw") {
			b = w.hw(f[3])
		}
		return w.apply(w.replaceLink(w.actor(f[1]), b, has(f, "org")))
	case "request":
		b := w.actor(f[1])
		if has(f, "hw") {
			b = w.hw(f[1])
		}
		return w.apply(w.requestLink(b))
	case "veto":
		return w.apply(w.vetoLink(w.actor(f[2])))
	case "recover":
		return w.apply(w.recoverLink(w.actor(f[1]), has(f, "org")))
	case "rotate-recovery":
		if err := w.apply(w.rotateRecoveryLink(w.actor(f[2]))); err != nil {
			return err
		}
		w.recGen++
		return nil
	case "policy", "policy-by":
		var signer Signer = w.org()
		flags := f[1:]
		if f[0] == "policy-by" {
			signer, flags = w.actor(f[1]).key(), f[2:]
		}
		p, err := parsePolicyFlags(Policy{}, flags)
		if err != nil {
			return err
		}
		return w.apply(w.policyLink(p, signer))
	case "wait":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return err
		}
		w.now = w.now.Add(d)
		return nil
	case "expect":
		return w.expect(f[1:])
	}
	return fmt.Errorf("unknown statement %q", stmt)
}

func (w *world) expect(f []string) error {
	if w.st == nil {
		return fmt.Errorf("expect before genesis")
	}
	ids := func(rs []DeviceRecord) string {
		var names []string
		for _, r := range rs {
			names = append(names, w.nameOf(r.ID))
		}
		sort.Strings(names)
		return strings.Join(names, " ")
	}
	want := append([]string(nil), f[1:]...)
	sort.Strings(want)
	var got string
	switch f[0] {
	case "active":
		got = ids(w.st.Active())
	case "revoked":
		got = ids(w.st.Revoked())
	case "retired":
		got = ids(w.st.Retired())
	case "pending":
		p, ok := w.st.PendingRecovery()
		if ok {
			got = w.nameOf(p.Device.ID)
		}
	case "no-pending":
		if _, ok := w.st.PendingRecovery(); ok {
			return fmt.Errorf("a recovery is pending")
		}
		return nil
	default:
		return fmt.Errorf("unknown expectation %q", f[0])
	}
	if got != strings.Join(want, " ") {
		return fmt.Errorf("expect %s: got [%s], want [%s]", f[0], got, strings.Join(want, " "))
	}
	return nil
}

func (w *world) nameOf(id DeviceID) string {
	for n, a := range w.actors {
		if a.id == id {
			return n
		}
	}
	return id.String()
}

// run executes a scenario, failing t on the first unmet statement.
func (w *world) run(t testing.TB, script string) {
	t.Helper()
	for i, stmt := range strings.FieldsFunc(script, func(r rune) bool { return r == ';' || r == '\n' }) {
		stmt = strings.TrimSpace(stmt)
		if stmt == "" || strings.HasPrefix(stmt, "#") {
			continue
		}
		wantErr := ""
		if j := strings.LastIndex(stmt, "!"); j >= 0 {
			stmt, wantErr = strings.TrimSpace(stmt[:j]), strings.TrimSpace(stmt[j+1:])
		}
		head := w.st
		err := w.step(stmt)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("statement %d %q: %v", i+1, stmt, err)
		case wantErr != "" && !isCode(err, wantErr):
			t.Fatalf("statement %d %q: err = %v, want %s", i+1, stmt, err, wantErr)
		case wantErr != "" && w.st != head:
			t.Fatalf("statement %d %q failed but changed the state", i+1, stmt)
		}
	}
}
