package attestation

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm"
	"github.com/enigm/enigm/backend/tpm/attest"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testenv"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/tpmsim"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
)

// tpmDevice is a device with a TPM keystore on the simulator (its store
// bound to pcrs, if any) and its public record.
type tpmDevice struct {
	ak  attest.AK
	id  *keystore.IdentityKey
	bk  *keystore.BindingKey
	dev chain.Device
}

func newTPMDevice(t *testing.T, pcrs []int) *tpmDevice {
	t.Helper()
	if err := tpmsim.Reset(); err != nil {
		testenv.Missing(t, "TPM simulator", err)
	}
	ctx := context.Background()
	be, err := tpm.New(tpm.Options{Open: tpmsim.Open, PCRs: pcrs})
	if err != nil {
		t.Fatal(err)
	}
	ak, err := be.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Init(ctx, filepath.Join(t.TempDir(), "h"), be, []byte("pw"), keystore.InitOptions{Options: keystore.Options{
		Backend: func(string) (backend.Backend, error) { return be, nil }}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	ks.SetAppAuthorized(true)
	idInfo, err := ks.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup})
	if err != nil {
		t.Fatal(err)
	}
	kemInfo, err := ks.Generate(keystore.ClassKEM, keystore.GenerateOptions{Cause: lifecycle.AccountSetup})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := ks.Identity(idInfo.ID)
	bk, err := ks.Binding()
	if err != nil {
		t.Fatal(err)
	}
	bpub, _ := bk.Public()
	ipub, _ := id.HybridPublic()
	return &tpmDevice{ak: ak, id: id, bk: bk, dev: chain.Device{ID: chain.DeviceID(ks.DeviceID()), Name: "laptop", Identity: ipub,
		KEM: kemInfo.Public, Binding: bpub, Level: chain.LevelHardwareTPM}}
}

// attest has the TPM attest over the nonce of in and returns in with the
// evidence in its device record.
func (d *tpmDevice) attest(t *testing.T, in chain.AttestationInput) chain.AttestationInput {
	t.Helper()
	n, err := Nonce(in)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := d.bk.Attest(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	rec := *in.Device
	rec.Evidence = &chain.Evidence{Type: ev.Type, Data: ev.Data}
	in.Device = &rec
	return in
}

// The evidence binds the whole device record, the head and the link: made
// for one record, it is refused for the same keys under another name,
// another claimed level, or at another chain head. (Before, the nonce
// covered neither the name, the level nor the head, and the verifier did
// not look at the level: TPM evidence passed in a record that claimed
// hardware-pkcs11.)
func TestEvidenceBindsRecordLevelAndHead(t *testing.T) {
	d := newTPMDevice(t, nil)
	v := &TPM{Trusted: []attest.AK{d.ak}}
	in := d.attest(t, chain.AttestationInput{Account: chain.AccountID{7}, Type: chain.TypeAddDevice, Prev: chain.Hash{1},
		Nonce: make([]byte, chain.NonceSize), Device: &d.dev})
	if err := v.VerifyAttestation(in); err != nil {
		t.Fatalf("genuine evidence refused: %v", err)
	}
	with := func(f func(in *chain.AttestationInput, rec *chain.Device)) chain.AttestationInput {
		c := in
		rec := *in.Device
		f(&c, &rec)
		c.Device = &rec
		return c
	}
	cases := []struct {
		desc string
		in   chain.AttestationInput
	}{
		{"another name", with(func(_ *chain.AttestationInput, r *chain.Device) { r.Name = "server room" })},
		{"another claimed level", with(func(_ *chain.AttestationInput, r *chain.Device) { r.Level = chain.LevelHardwarePKCS11 })},
		{"platform level", with(func(_ *chain.AttestationInput, r *chain.Device) { r.Level = chain.LevelHardwarePlatform })},
		{"another device id", with(func(_ *chain.AttestationInput, r *chain.Device) { r.ID[0] ^= 1 })},
		{"another head", with(func(c *chain.AttestationInput, _ *chain.Device) { c.Prev = chain.Hash{2} })},
		{"another account", with(func(c *chain.AttestationInput, _ *chain.Device) { c.Account = chain.AccountID{8} })},
		{"another request", with(func(c *chain.AttestationInput, _ *chain.Device) { c.Nonce = []byte("another request nonce..........!") })},
		{"another link type", with(func(c *chain.AttestationInput, _ *chain.Device) { c.Type = chain.TypeReplaceDevice })},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if err := v.VerifyAttestation(c.in); !errors.Is(err, ErrEvidence) {
				t.Fatalf("VerifyAttestation = %v, want ErrEvidence", err)
			}
		})
	}
	// Evidence made honestly for a record claiming hardware-pkcs11 (the
	// nonce then covers that level) is still refused: TPM evidence shows a
	// TPM, and only hardware-tpm claims one.
	pk := d.dev
	pk.Level = chain.LevelHardwarePKCS11
	claim := d.attest(t, chain.AttestationInput{Type: chain.TypeGenesis, Device: &pk})
	if err := v.VerifyAttestation(claim); !errors.Is(err, ErrEvidence) {
		t.Fatalf("TPM evidence for a hardware-pkcs11 record: %v, want ErrEvidence", err)
	}
}

// In the chain: a genesis whose record was renamed after the evidence was
// made is refused by Apply (ErrAttestation); the original verifies.
func TestRenamedRecordRefusedByApply(t *testing.T) {
	d := newTPMDevice(t, nil)
	in := d.attest(t, chain.AttestationInput{Type: chain.TypeGenesis, Device: &d.dev})
	v := chain.WithAttestationVerifier(&TPM{Trusted: []attest.AK{d.ak}})
	for _, name := range []string{"laptop", "ceo's laptop"} {
		rec := *in.Device
		rec.Name = name
		g := signedGenesis(t, d, rec)
		_, err := chain.Apply(nil, g, time.Now(), v)
		switch {
		case name == "laptop" && err != nil:
			t.Fatalf("genuine genesis refused: %v", err)
		case name != "laptop" && !errors.Is(err, chain.ErrAttestation):
			t.Fatalf("renamed record: %v, want ErrAttestation", err)
		}
	}
}

// signedGenesis is a genesis for rec, signed by d's keys.
func signedGenesis(t *testing.T, d *tpmDevice, rec chain.Device) *chain.Link {
	t.Helper()
	rk, _ := hybrid.NewPrivateKey(bytes.Repeat([]byte{3}, hybrid.SeedSize))
	dr, err := chain.NewGenesis(time.Now(), &chain.Genesis{Device: rec, Recovery: rk.Public(), Policy: chain.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, dr.Sign(chain.RoleSubject, testkit.Must(d.id.ChainSigner(true))))
	bs, err := d.bk.ChainSigner()
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, dr.SignBinding(bs, nil))
	testkit.NoErr(t, dr.Sign(chain.RoleNewRecovery, rk))
	l, err := dr.Link()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// pcrValues reads the simulator's current SHA-256 PCR values.
func pcrValues(t *testing.T, pcrs ...int) map[int][]byte {
	t.Helper()
	tp, err := tpmsim.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	out := map[int][]byte{}
	for _, p := range pcrs {
		sel := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(uint(p))}}}
		rsp, err := (tpm2.PCRRead{PCRSelectionIn: sel}).Execute(tp)
		if err != nil || len(rsp.PCRValues.Digests) != 1 {
			t.Fatalf("PCRRead %d: %v", p, err)
		}
		out[p] = rsp.PCRValues.Digests[0].Buffer
	}
	return out
}

// An organisation's verifier that requires the boot-state quote: evidence
// whose quote holds the allowed PCR values verifies; unexpected values, a
// quote over other PCRs, and no quote at all are refused (ErrBootState).
// Before, the quote's values were never compared with anything, and
// evidence without a quote passed every verifier.
func TestBootStateRequired(t *testing.T) {
	d := newTPMDevice(t, []int{7, 16})
	good := pcrValues(t, 7, 16)
	in := d.attest(t, chain.AttestationInput{Type: chain.TypeGenesis, Device: &d.dev})
	boot := func(sets ...map[int][]byte) *BootState {
		b, err := NewBootState(sets...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrong := map[int][]byte{7: good[7], 16: make([]byte, 32)}
	wrong[16][0] = 1
	if err := (&TPM{Trusted: []attest.AK{d.ak}, Boot: boot(good)}).VerifyAttestation(in); err != nil {
		t.Fatalf("allowed boot state refused: %v", err)
	}
	if err := (&TPM{Trusted: []attest.AK{d.ak}, Boot: boot(wrong, good)}).VerifyAttestation(in); err != nil {
		t.Fatalf("allowed boot state (second set) refused: %v", err)
	}
	for _, c := range []struct {
		desc string
		boot *BootState
	}{
		{"unexpected PCR values", boot(wrong)},
		{"quote over other PCRs", boot(map[int][]byte{7: good[7]})},
		{"quote over fewer PCRs than required", boot(map[int][]byte{0: make([]byte, 32), 7: good[7], 16: good[16]})},
	} {
		if err := (&TPM{Trusted: []attest.AK{d.ak}, Boot: c.boot}).VerifyAttestation(in); !errors.Is(err, ErrBootState) {
			t.Errorf("%s: %v, want ErrBootState", c.desc, err)
		}
	}
	// Through chain.Apply: unexpected values refuse the genesis.
	g := signedGenesis(t, d, *in.Device)
	if _, err := chain.Apply(nil, g, time.Now(), chain.WithAttestationVerifier(&TPM{Trusted: []attest.AK{d.ak}, Boot: boot(wrong)})); !errors.Is(err, chain.ErrAttestation) || !errors.Is(err, ErrBootState) {
		t.Fatalf("genesis with unexpected PCRs: %v, want ErrAttestation and ErrBootState", err)
	}

	// A device whose store is bound to no PCRs gives no quote: refused
	// when the quote is required, accepted when it is not.
	n := newTPMDevice(t, nil)
	nin := n.attest(t, chain.AttestationInput{Type: chain.TypeGenesis, Device: &n.dev})
	if err := (&TPM{Trusted: []attest.AK{n.ak}, Boot: boot(good)}).VerifyAttestation(nin); !errors.Is(err, ErrBootState) {
		t.Fatalf("missing quote: %v, want ErrBootState", err)
	}
	if err := (&TPM{Trusted: []attest.AK{n.ak}}).VerifyAttestation(nin); err != nil {
		t.Fatalf("no quote, none required: %v", err)
	}
}

func TestParseBootState(t *testing.T) {
	h := "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	b, err := ParseBootState([]byte(`{"version":1,"allowed":[{"7":"` + h + `","0":"` + h + `"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := b.PCRs(); len(p) != 2 || p[0] != 0 || p[1] != 7 {
		t.Fatalf("PCRs = %v", p)
	}
	for _, bad := range []string{
		`{"version":2,"allowed":[{"7":"` + h + `"}]}`,
		`{"version":1,"allowed":[]}`,
		`{"version":1,"allowed":[{}]}`,
		`{"version":1,"allowed":[{"24":"` + h + `"}]}`,
		`{"version":1,"allowed":[{"07":"` + h + `"}]}`,
		`{"version":1,"allowed":[{"x":"` + h + `"}]}`,
		`{"version":1,"allowed":[{"7":"00"}]}`,
		`{"version":1,"allowed":[{"7":"zz"}]}`,
		`{"version":1,"allowed":[{"7":"` + h + `"},{"0":"` + h + `"}]}`,
		`not json`,
	} {
		if _, err := ParseBootState([]byte(bad)); err == nil {
			t.Errorf("ParseBootState(%s) accepted", bad)
		}
	}
}

// The nonce is what the hardware signs over: pin its layout, and that it
// ignores the evidence field and nothing else of the record.
func TestNonceLayout(t *testing.T) {
	id, _ := hybrid.NewPrivateKey(bytes.Repeat([]byte{5}, hybrid.SeedSize))
	bk, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{6}, 32))
	if err != nil {
		t.Fatal(err)
	}
	kem, err := hpke.MLKEM768X25519().DeriveKeyPair(bytes.Repeat([]byte{7}, 64))
	if err != nil {
		t.Fatal(err)
	}
	dev := chain.Device{ID: chain.DeviceID{1, 2}, Name: "laptop", Identity: id.Public(), KEM: kem.PublicKey().Bytes(),
		Binding: &bk.PublicKey, Level: chain.LevelHardwareTPM}
	in := chain.AttestationInput{Account: chain.AccountID{9}, Type: chain.TypeAddDevice, Prev: chain.Hash{8}, Nonce: bytes.Repeat([]byte{4}, 32), Device: &dev}
	got, err := Nonce(in)
	if err != nil {
		t.Fatal(err)
	}
	rh, err := dev.Hash()
	if err != nil {
		t.Fatal(err)
	}
	m := append([]byte("enigm/v1/attestation/v2\x00"), byte(chain.TypeAddDevice))
	m = append(append(m, in.Account[:]...), in.Prev[:]...)
	m = append(append(m, 32), in.Nonce...)
	want := sha256.Sum256(append(m, rh[:]...))
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("nonce layout changed:\n got %x\nwant %x", got, want)
	}
	// And the bytes themselves (the record hash's encoding included).
	if h := hex.EncodeToString(got); h != goldenNonce {
		t.Fatalf("nonce = %s, want %s", h, goldenNonce)
	}
	withEv := dev
	withEv.Evidence = &chain.Evidence{Type: attest.Type, Data: []byte{1}}
	if n, _ := Nonce(chain.AttestationInput{Account: in.Account, Type: in.Type, Prev: in.Prev, Nonce: in.Nonce, Device: &withEv}); !bytes.Equal(n, got) {
		t.Fatal("the nonce depends on the evidence field")
	}
}

const goldenNonce = "cd41416bfbd6575d3f52aa27fb36d7ae8d4fd1c1f5f13ef56caafe4061565658"
