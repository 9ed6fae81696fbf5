package attestation

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/enigm/enigm/backend/tpm/attest"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

// TestTPMEvidenceIntoChain: a TPM keystore's binding key is attested by the
// simulator over the nonce of the genesis that adds the device; the evidence
// travels in the device record and chain.Apply accepts it with a verifier
// that trusts the simulator's attestation key, and refuses it otherwise.
func TestTPMEvidenceIntoChain(t *testing.T) {
	td := newTPMDevice(t, nil)
	ak, id, bk := td.ak, td.id, td.bk
	in := td.attest(t, chain.AttestationInput{Type: chain.TypeGenesis, Device: &td.dev})
	dev := *in.Device
	in.Device = &dev

	rk, _ := hybrid.NewPrivateKey(bytes.Repeat([]byte{3}, hybrid.SeedSize))
	p := chain.DefaultPolicy()
	p.RequireVerifiedAttestation = true
	d, err := chain.NewGenesis(time.Now(), &chain.Genesis{Device: dev, Recovery: rk.Public(), Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, d.Sign(chain.RoleSubject, testkit.Must(id.ChainSigner(true))))
	bs, err := bk.ChainSigner()
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, d.SignBinding(bs, nil))
	d.Sign(chain.RoleNewRecovery, rk)
	g, err := d.Link()
	if err != nil {
		t.Fatal(err)
	}
	st, err := chain.Apply(nil, g, time.Now(), chain.WithAttestationVerifier(&TPM{Trusted: []attest.AK{ak}}))
	if err != nil {
		t.Fatalf("attested genesis refused: %v", err)
	}
	if rec, _ := st.Device(dev.ID); !rec.AttestationVerified {
		t.Fatal("the device record is not marked attestation-verified")
	}
	// An untrusted attestation key, or no verifier, fails closed.
	other := append(attest.AK(nil), ak...)
	other[len(other)-1] ^= 1
	if _, err := chain.Apply(nil, g, time.Now(), chain.WithAttestationVerifier(&TPM{Trusted: []attest.AK{other}})); err == nil {
		t.Fatal("evidence accepted under an untrusted attestation key")
	}
	if _, err := chain.Apply(nil, g, time.Now()); err == nil {
		t.Fatal("a policy requiring attestation accepted a device without a verifier")
	}
	// The same evidence in another context (an add_device of some account)
	// does not verify: the nonce binds the link type, account and request.
	moved := in
	moved.Type, moved.Account, moved.Nonce = chain.TypeAddDevice, chain.AccountID{1}, []byte("request")
	moved.Device = &dev
	if err := (&TPM{Trusted: []attest.AK{ak}}).VerifyAttestation(moved); !errors.Is(err, ErrEvidence) {
		t.Fatalf("evidence replayed into another enrollment: %v", err)
	}
}
