package chain

import (
	"crypto/sha256"
	"fmt"

	"filippo.io/mldsa"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

// halfVectors adds the vectors that tamper with one half of a hybrid
// signature alone, and the chain that a small-order Ed25519 key would let
// through on ML-DSA-65 alone. Each half must count: a verifier that ignored
// either one accepts the first four.
func (g *vgen) halfVectors() {
	w := newWorld("v").script("genesis A; add B by A")
	a, c := w.actor("A"), w.actor("C")
	// A's valid approval of another request for C: well-formed halves by
	// the same key, under the same context, over another message.
	other := testkit.Must(NewDraft(w.st, w.now, &AddDevice{Device: c.device(), Nonce: nonceFor("other"), PairingHash: PairingHash(nonceFor("other"), "999999")}))
	check(other.SignDevice(a.id, a.key()))
	otherSig := other.sigs[0].Sig
	// And C's valid signature, under the proof-of-possession context, over
	// another message.
	otherPoP := testkit.Must(c.key().Sign(SigningContext(TypeAddDevice, RoleSubject), []byte("another payload"))).Bytes()

	swap := func(role Role, donor []byte, edHalf bool) []byte {
		return rewrite(w.addLink(c, a, false), func(x *wLink) {
			for i := range x.Sigs {
				if x.Sigs[i].Role != uint64(role) {
					continue
				}
				s := x.Sigs[i].Sig
				if edHalf {
					copy(s[:64], donor[:64])
				} else {
					copy(s[64:], donor[64:])
				}
			}
		})
	}
	g.bad("approval-ed25519-half-swapped", "the approving device's signature with its Ed25519 half taken from a valid approval of another request (the ML-DSA-65 half intact)",
		w, swap(RoleDevice, otherSig, true), "ErrBadSignature")
	g.bad("approval-mldsa-half-swapped", "the approving device's signature with its ML-DSA-65 half taken from a valid approval of another request (the Ed25519 half intact)",
		w, swap(RoleDevice, otherSig, false), "ErrBadSignature")
	g.bad("subject-ed25519-half-swapped", "the new device's proof of possession with its Ed25519 half taken from its signature over another message",
		w, swap(RoleSubject, otherPoP, true), "ErrBadSignature")
	g.bad("subject-mldsa-half-swapped", "the new device's proof of possession with its ML-DSA-65 half taken from its signature over another message",
		w, swap(RoleSubject, otherPoP, false), "ErrBadSignature")

	g.f.Vectors = append(g.f.Vectors, vector{Name: "small-order-ed25519-key", Kind: "chain", Now: T0.Unix(),
		Desc:  "a genesis whose device identity key has the identity point as its Ed25519 half, signed with the constant Ed25519 signature (R = identity, S = 0) and a real ML-DSA-65 signature: it verifies unless the key is refused",
		Chain: []string{g.id(weakGenesis())}, WantErr: "ErrBadKey"})
}

// weakGenesis builds a genesis whose first device's identity key is
// (identity point, the ML-DSA-65 key of device W): its subject signature
// needs no Ed25519 secret at all.
func weakGenesis() []byte {
	w := newWorld("weak")
	dev := w.actor("W")
	l := w.genesisLink(dev, DefaultPolicy(), false)
	identity := make([]byte, 32)
	identity[0] = 1 // the canonical encoding of the neutral element
	weak := append(identity, dev.key().Public().MLDSA()...)
	var x wLink
	check(wire.Unmarshal(l.raw, &x, 0))
	var b wGenesis
	check(wire.Unmarshal(x.Body, &b, 0))
	b.Device.Identity = weak
	x.Body, x.Sigs = testkit.Must(wire.Marshal(&b)), nil
	payload := testkit.Must(wire.Marshal(&x))

	ctx := SigningContext(TypeGenesis, RoleSubject)
	kh := sha256.Sum256(weak)
	m := append([]byte("enigm-hybrid-v1\x00"), byte(len(ctx)))
	m = append(append(append(m, ctx...), kh[:]...), payload...)
	pq := testkit.Must(mldsa.NewPrivateKey(mldsa.MLDSA65(), keys.Seed(fmt.Sprintf("hybrid:%s/%d", dev.name, dev.idGen), hybrid.SeedSize)[32:]))
	pqSig := testkit.Must(pq.SignDeterministic(m, &mldsa.Options{Context: ctx}))
	constant := append(append([]byte(nil), identity...), make([]byte, 32)...)
	rec := testkit.Must(w.recovery().Sign(SigningContext(TypeGenesis, RoleNewRecovery), payload))
	x.Sigs = []wSig{
		{Role: uint64(RoleSubject), Sig: append(constant, pqSig...)},
		{Role: uint64(RoleNewRecovery), Sig: rec.Bytes()},
	}
	return testkit.Must(wire.Marshal(&x))
}
