package chain

import (
	"errors"
	"testing"

	"github.com/enigm/enigm/internal/testkit"
)

// TestSigningRules checks the signing rules table (docs/design/chain.md
// §2.1) link type by link type, for the cases the vectors do not cover.
func TestSigningRules(t *testing.T) {
	type build func(w *world) *Link
	cases := []struct {
		name, script string
		link         build
		want         error
	}{
		{"genesis without recovery key proof", "", func(w *world) *Link {
			a := w.actor("A")
			d := testkit.Must(NewGenesis(w.now, &Genesis{Device: a.device(), Recovery: w.recovery().Public(), Policy: DefaultPolicy()}))
			check(d.Sign(RoleSubject, a.key()))
			return testkit.Must(d.Link())
		}, ErrMissingSignature},
		{"managed genesis without the organisation", "", func(w *world) *Link {
			a := w.actor("A")
			d := testkit.Must(NewGenesis(w.now, &Genesis{Device: a.device(), Recovery: w.recovery().Public(), Policy: DefaultPolicy(), Org: &Org{ID: "o", AdminKey: w.org().Public()}}))
			check(d.Sign(RoleSubject, a.key()))
			check(d.Sign(RoleNewRecovery, w.recovery()))
			return testkit.Must(d.Link())
		}, ErrMissingSignature},
		{"unmanaged genesis signed by an organisation", "", func(w *world) *Link {
			a := w.actor("A")
			d := testkit.Must(NewGenesis(w.now, &Genesis{Device: a.device(), Recovery: w.recovery().Public(), Policy: DefaultPolicy()}))
			check(d.Sign(RoleSubject, a.key()))
			check(d.Sign(RoleNewRecovery, w.recovery()))
			check(d.Sign(RoleOrg, w.org()))
			return testkit.Must(d.Link())
		}, ErrNotManaged},
		{"genesis recovery key equals device key", "", func(w *world) *Link {
			a := w.actor("A")
			d := testkit.Must(NewGenesis(w.now, &Genesis{Device: a.device(), Recovery: a.key().Public(), Policy: DefaultPolicy()}))
			check(d.Sign(RoleSubject, a.key()))
			check(d.Sign(RoleNewRecovery, a.key()))
			return testkit.Must(d.Link())
		}, ErrKeyReused},
		{"genesis below its own minimum level", "", func(w *world) *Link {
			return w.genesisLink(w.actor("A"), Policy{MinLevel: LevelHardwareTPM}, false)
		}, ErrProtectionLevel},
		{"two signatures in one role", "genesis A; add B by A", func(w *world) *Link {
			d := testkit.Must(NewDraft(w.st, w.now, &RevokeDevice{ID: w.actor("B").id}))
			check(d.SignDevice(w.actor("A").id, w.actor("A").key()))
			check(d.SignDevice(w.actor("B").id, w.actor("B").key()))
			return testkit.Must(d.Link())
		}, ErrUnexpectedSignature},
		{"approval statement missing", "genesis A", func(w *world) *Link {
			c := w.actor("C")
			d := w.addDraft(c)
			hs := testkit.Must(w.actor("A").key().Sign(SigningContext(TypeAddDevice, RoleDevice), d.Payload()))
			d.AddSignature(Signature{Role: RoleDevice, Signer: w.actor("A").id, Sig: hs.Bytes()})
			w.signSubject(d, c)
			return testkit.Must(d.Link())
		}, ErrMissingSignature},
		{"approval statement on a revocation", "genesis A; add B by A", func(w *world) *Link {
			d := testkit.Must(NewDraft(w.st, w.now, &RevokeDevice{ID: w.actor("B").id}))
			s := testkit.Must(SignApproval(Approval{}, TypeAddDevice, RoleDevice, w.actor("A").id, w.actor("A").key()))
			d.AddSignature(s)
			return testkit.Must(d.Link())
		}, ErrUnexpectedSignature},
		{"rotation of a hardware device without its binding key", "genesis A hw", func(w *world) *Link {
			a := w.actor("A")
			d := testkit.Must(NewDraft(w.st, w.now, &RotateKeys{ID: a.id, KEM: testKEM("rot/A/1").Bytes()}))
			check(d.SignDevice(a.id, a.key()))
			return testkit.Must(d.Link())
		}, ErrMissingSignature},
		{"identity rotation without the new key's proof", "genesis A", func(w *world) *Link {
			a := w.actor("A")
			d := testkit.Must(NewDraft(w.st, w.now, &RotateKeys{ID: a.id, Identity: testHybrid("rot/A/new").Public()}))
			check(d.SignDevice(a.id, a.key()))
			return testkit.Must(d.Link())
		}, ErrMissingSignature},
		{"rotation to a key used before", "genesis A; add B by A", func(w *world) *Link {
			a := w.actor("A")
			d := testkit.Must(NewDraft(w.st, w.now, &RotateKeys{ID: a.id, KEM: w.actor("B").kem().Bytes()}))
			check(d.SignDevice(a.id, a.key()))
			return testkit.Must(d.Link())
		}, ErrKeyReused},
		{"replacement approved by another device", "genesis A; add B by A", func(w *world) *Link {
			c := w.actor("C")
			n := nonceFor("r")
			d := testkit.Must(NewDraft(w.st, w.now, &ReplaceDevice{Old: w.actor("B").id, Device: c.device(), Nonce: n, PairingHash: PairingHash(n, "1")}))
			check(d.SignDevice(w.actor("A").id, w.actor("A").key()))
			w.signSubject(d, c)
			return testkit.Must(d.Link())
		}, ErrWrongSigner},
		{"replacement needs the organisation when policy says so", "genesis A managed admin-approval", func(w *world) *Link {
			return w.replaceLink(w.actor("A"), w.actor("C"), false)
		}, ErrAdminApprovalRequired},
		{"organisation approval where policy does not ask for it", "genesis A managed", func(w *world) *Link {
			return w.addLink(w.actor("B"), w.actor("A"), true)
		}, ErrUnexpectedSignature},
		{"recovery key rotation without the new key's proof", "genesis A", func(w *world) *Link {
			d := testkit.Must(NewDraft(w.st, w.now, &RotateRecovery{Recovery: testHybrid("rec/new").Public()}))
			check(d.SignDevice(w.actor("A").id, w.actor("A").key()))
			return testkit.Must(d.Link())
		}, ErrMissingSignature},
		{"recovery key rotation back to an old key", "genesis A; rotate-recovery by A", func(w *world) *Link {
			old := testHybrid(w.name + "/recovery/0")
			d := testkit.Must(NewDraft(w.st, w.now, &RotateRecovery{Recovery: old.Public()}))
			check(d.SignDevice(w.actor("A").id, w.actor("A").key()))
			check(d.Sign(RoleNewRecovery, old))
			return testkit.Must(d.Link())
		}, ErrKeyReused},
		{"recovery key rotation by the recovery key alone", "genesis A", func(w *world) *Link {
			next := testHybrid("rec/next")
			d := testkit.Must(NewDraft(w.st, w.now, &RotateRecovery{Recovery: next.Public()}))
			check(d.Sign(RoleRecovery, w.recovery()))
			check(d.Sign(RoleNewRecovery, next))
			return testkit.Must(d.Link())
		}, ErrUnexpectedSignature},
		{"veto by a revoked device", "genesis A; add B by A; revoke B by A; request R", func(w *world) *Link {
			return w.vetoLink(w.actor("B"))
		}, ErrSignerRevoked},
		{"veto of another request", "genesis A; request R", func(w *world) *Link {
			d := testkit.Must(NewDraft(w.st, w.now, &RecoveryVeto{Request: Hash{1}}))
			check(d.SignDevice(w.actor("A").id, w.actor("A").key()))
			return testkit.Must(d.Link())
		}, ErrNoPendingRecovery},
		{"recover signed by another device", "genesis A delay=0s; request R", func(w *world) *Link {
			return w.recoverLink(w.actor("S"), false)
		}, ErrBadSignature},
		{"recover without a request", "genesis A", func(w *world) *Link {
			return w.recoverLink(w.actor("R"), false)
		}, ErrNoPendingRecovery},
		{"recovery request for an active device id", "genesis A; add B by A", func(w *world) *Link {
			return w.requestLink(w.actor("B"))
		}, ErrDeviceExists},
		{"recovery delay shortened while a request is pending", "genesis A managed; request R; policy delay=0s; wait 1h", func(w *world) *Link {
			return w.recoverLink(w.actor("R"), false)
		}, ErrRecoveryTooEarly},
		{"set_policy with a device signature", "genesis A managed", func(w *world) *Link {
			d := testkit.Must(NewDraft(w.st, w.now, &SetPolicy{Policy: Policy{}}))
			check(d.Sign(RoleOrg, w.org()))
			check(d.SignDevice(w.actor("A").id, w.actor("A").key()))
			return testkit.Must(d.Link())
		}, ErrUnexpectedSignature},
		{"revocation of a retired device", "genesis A; add B by A; replace B with C", func(w *world) *Link {
			return w.revokeLink(w.actor("B"), RoleDevice, w.actor("A"))
		}, ErrDeviceNotActive},
		{"revocation of an unknown device", "genesis A", func(w *world) *Link {
			return w.revokeLink(w.actor("Z"), RoleDevice, w.actor("A"))
		}, ErrUnknownDevice},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld("rules/" + c.name)
			w.run(t, c.script)
			before := w.st
			err := w.apply(c.link(w))
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if len(sentinels(err)) != 1 {
				t.Fatalf("err = %v wraps %v, want one sentinel", err, sentinels(err))
			}
			if w.st != before {
				t.Fatal("a refused link changed the state")
			}
		})
	}
}
