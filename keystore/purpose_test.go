package keystore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// A message or call key sealed to a device's KEM key opens only into a
// session key inside the keystore: no opening returns its bytes, whatever
// binding or sealing the caller names. (Before, KEMKey.Open decrypted
// under any info the caller chose and returned the 32-byte key.)
func TestKEMOpenYieldsNoSessionKey(t *testing.T) {
	f := newFixture(t)
	si := f.genWith(ClassSession, GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true})
	sk, _ := f.s.Session(si.ID)
	g := newFixture(t)
	g.s.SetAssociation(policy.Associated, nil)
	kemInfo := g.gen(ClassKEM, true)
	kem, _ := g.s.KEM(kemInfo.ID)
	bind := []byte("envelope header")
	ct, err := sk.SealTo(SealMessageKey, kemInfo.Public, bind)
	if err != nil {
		t.Fatal(err)
	}
	// The data opening, with the binding, with the full info of the
	// message-key label, or with nothing: none opens the key.
	for _, b := range [][]byte{bind, append([]byte("enigm/v1/kem/message-key\x00"), bind...), nil} {
		if pt, err := kem.OpenData(b, ct); err == nil {
			t.Fatalf("OpenData returned %d bytes of a sealed session key", len(pt))
		}
	}
	// Another sealing, or another binding, does not open it either.
	if _, err := kem.OpenSession(SealCallKey, bind, ct, SessionOptions{}); err == nil {
		t.Fatal("a message key opened as a call key")
	}
	if _, err := kem.OpenSession(SealMessageKey, []byte("other header"), ct, SessionOptions{}); err == nil {
		t.Fatal("a message key opened under another binding")
	}
	for _, sl := range []Sealing{SealAppData, 0, 9} {
		if _, err := kem.OpenSession(sl, bind, ct, SessionOptions{}); !errors.Is(err, ErrPurpose) {
			t.Fatalf("OpenSession with sealing %v: %v", sl, err)
		}
		if _, err := sk.SealTo(sl, kemInfo.Public, bind); !errors.Is(err, ErrPurpose) {
			t.Fatalf("SealTo with sealing %v: %v", sl, err)
		}
	}
	// The right sealing and binding install a handle; both ends hold the
	// same key (the same box opens).
	rk, err := kem.OpenSession(SealMessageKey, bind, ct, SessionOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	box, _ := sk.Seal([]byte("hello"), nil)
	if pt, err := rk.Open(box, nil); err != nil || string(pt) != "hello" {
		t.Fatalf("installed key: %q %v", pt, err)
	}
	if info, _ := g.s.Info(rk.ID()); info.Cause != lifecycle.MessagingSetup {
		t.Fatalf("a message key installed with cause %v", info.Cause)
	}
	// Application data is sealed under its own label: 32 bytes of it do
	// not install as a session key, and it opens as data only.
	data := bytes.Repeat([]byte{7}, 32)
	dct, err := SealData(kemInfo.Public, bind, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kem.OpenSession(SealMessageKey, bind, dct, SessionOptions{}); err == nil {
		t.Fatal("application data installed as a session key")
	}
	if pt, err := kem.OpenData(bind, dct); err != nil || !bytes.Equal(pt, data) {
		t.Fatalf("OpenData: %v", err)
	}
}

// chainContexts returns every link and approval context of package chain.
func chainContexts() []string {
	var out []string
	for ty := chain.LinkType(1); ; ty++ {
		n := 0
		for r := chain.Role(1); r < 32; r++ {
			for _, c := range []string{chain.SigningContext(ty, r), chain.ApprovalContext(ty, r)} {
				if c != "" {
					out, n = append(out, c), n+1
				}
			}
		}
		if n == 0 && ty > 1 {
			return out
		}
	}
}

// No signing purpose reaches a chain context: an application purpose
// spelled like one signs under "enigm/v1/app/…", which no link or approval
// verifies under; the zero Purpose is refused; the chain signer signs only
// chain.Requests. (Before, Sign took any purpose string, and
// Sign("link/add_device/subject", payload) made a valid link signature.)
func TestSignRefusesChainPurposes(t *testing.T) {
	f := newFixture(t)
	id := f.gen(ClassIdentity, true)
	k, _ := f.s.Identity(id.ID)
	pub, _ := k.HybridPublic()
	ctxs := chainContexts()
	if len(ctxs) < 10 {
		t.Fatalf("found only %d chain contexts", len(ctxs))
	}
	msg := []byte("a link payload")
	for _, ctx := range ctxs {
		p, err := AppPurpose(strings.TrimPrefix(ctx, "enigm/v1/"))
		if err != nil {
			t.Fatal(err)
		}
		sig, err := k.Sign(p, msg)
		if err != nil {
			t.Fatal(err)
		}
		hs, _ := hybrid.ParseSignature(sig)
		if hybrid.Verify(pub, ctx, msg, hs) == nil {
			t.Fatalf("an application signature verifies under the chain context %s", ctx)
		}
	}
	if _, err := k.Sign(Purpose{}, msg); !errors.Is(err, ErrPurpose) {
		t.Fatalf("the zero purpose: %v", err)
	}
	if _, err := k.ProvePossession(Purpose{}, msg); !errors.Is(err, ErrPurpose) {
		t.Fatalf("the zero purpose: %v", err)
	}
	for _, bad := range []string{"", "Bad", strings.Repeat("a", 61)} {
		if _, err := AppPurpose(bad); !errors.Is(err, ErrPurpose) {
			t.Fatalf("AppPurpose(%q): %v", bad, err)
		}
	}
	cs, err := k.ChainSigner(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, ctx := range ctxs {
		if _, err := cs.Sign(ctx, msg); !errors.Is(err, ErrPurpose) {
			t.Fatalf("the chain signer signed raw bytes under %s: %v", ctx, err)
		}
	}
	if _, err := cs.SignRequest(&chain.Request{}); !errors.Is(err, ErrPurpose) {
		t.Fatalf("the chain signer signed a request chain did not make: %v", err)
	}
	if _, err := cs.SignRequest(nil); !errors.Is(err, ErrPurpose) {
		t.Fatalf("nil request: %v", err)
	}
	// Through chain, the same key signs a link that verifies.
	kem := f.gen(ClassKEM, true)
	rk, _ := hybrid.NewPrivateKey(bytes.Repeat([]byte{9}, hybrid.SeedSize))
	created := f.gen(ClassIdentity, false)
	ck, _ := f.s.Identity(created.ID)
	cpub, _ := ck.HybridPublic()
	d, err := chain.NewGenesis(f.clock.Now(), &chain.Genesis{Device: chain.Device{ID: chain.DeviceID{1}, Name: "d", Identity: cpub,
		KEM: kem.Public, Level: chain.LevelSoftware}, Recovery: rk.Public(), Policy: chain.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	possess, _ := ck.ChainSigner(true)
	testkit.NoErr(t, d.Sign(chain.RoleSubject, possess))
	d.Sign(chain.RoleNewRecovery, rk)
	l, err := d.Link()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chain.Apply(nil, l, f.clock.Now()); err != nil {
		t.Fatalf("a genesis signed through the chain signer: %v", err)
	}
}

// The binding key signs purpose-bound digests, never a digest the caller
// hands it: its application signatures do not verify as a link's binding
// signature, and its chain signer refuses raw digests.
func TestBindingSignRefusesChainPurposes(t *testing.T) {
	s, _ := phoneStore(t)
	bk, err := s.Binding()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := bk.Public()
	msg := []byte("a link payload")
	ctx := chain.SigningContext(chain.TypeAddDevice, chain.RoleBinding)
	p, _ := AppPurpose(strings.TrimPrefix(ctx, "enigm/v1/"))
	sig, err := bk.Sign(p, msg)
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, VerifyBinding(pub, p, msg, sig))
	d, _ := chain.BindingDigest(ctx, pub, msg)
	if ecdsa.VerifyASN1(pub, d[:], sig) {
		t.Fatal("an application binding signature verifies as a link's binding signature")
	}
	if _, err := bk.Sign(Purpose{}, msg); !errors.Is(err, ErrPurpose) {
		t.Fatalf("the zero purpose: %v", err)
	}
	cs, err := bk.ChainSigner()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Sign(rand.Reader, d[:], nil); !errors.Is(err, ErrPurpose) {
		t.Fatalf("the binding chain signer signed a raw digest: %v", err)
	}
	if _, err := cs.SignBindingRequest(&chain.Request{}); !errors.Is(err, ErrPurpose) {
		t.Fatalf("a request chain did not make: %v", err)
	}
}

// Code outside packages keystore and chain cannot make a Purpose or a
// chain.Request of its own: both have only unexported fields. The test
// builds such code in another package of the module through an overlay.
func TestPurposesCannotBeForged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the compiler")
	}
	build := func(body string) (string, error) {
		src := "package keystoretest\n\nimport (\n\t\"github.com/enigm/enigm/chain\"\n\t\"github.com/enigm/enigm/keystore\"\n)\n\nvar _ = chain.Request{}\nvar _ = keystore.Purpose{}\n\n" + body + "\n"
		return buildWithFile(t, "keystoretest", "forge.go", src)
	}
	if out, err := build(`var _, _ = keystore.AppPurpose("x")`); err != nil {
		t.Fatalf("control does not compile: %s", out)
	}
	for _, body := range []string{
		`var _ = keystore.Purpose{"link/add_device/subject"}`,
		`var _ = chain.Request{"enigm/v1/link/add_device/subject", nil}`,
	} {
		out, err := build(body)
		if err == nil {
			t.Fatalf("compiled: %s", body)
		}
		if !strings.Contains(out, "unexported field") && !strings.Contains(out, "implicit assignment") {
			t.Fatalf("%s failed for another reason: %s", body, out)
		}
	}
}
