package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/internal/format"
	"github.com/enigm/enigm/internal/redact"
	"github.com/enigm/enigm/internal/testkit"
)

func TestCapabilities(t *testing.T) {
	cases := []struct {
		desc string
		pcrs []int
		want []backend.Gate
	}{
		{"no PCRs", nil, []backend.Gate{backend.GateUnlockSecret, backend.GateNonExportable, backend.GateDestroy}},
		{"PCRs 0,7", []int{0, 7}, []backend.Gate{backend.GateUnlockSecret, backend.GateNonExportable, backend.GateDestroy, backend.GateBootState}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			b, err := New(Options{PCRs: c.pcrs, Open: openSim})
			if err != nil {
				t.Fatal(err)
			}
			caps := b.Capabilities()
			if caps.Name != "tpm" || caps.Level != backend.LevelHardwareTPM || caps.MaxSealSize != 128 {
				t.Fatalf("caps %+v", caps)
			}
			if !caps.Holds(backend.AlgP256) || !caps.Holds(backend.AlgSealedBox) || caps.Holds(backend.AlgAES256) {
				t.Fatalf("resident %v", caps.Resident)
			}
			if !slices.Equal(caps.HardwareGates, c.want) {
				t.Fatalf("gates %v, want %v", caps.HardwareGates, c.want)
			}
			if !slices.Equal(caps.Attestation, []string{"tpm2-certify"}) {
				t.Fatalf("attestation %v", caps.Attestation)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	cases := []struct {
		desc string
		opts Options
	}{
		{"PCR 24", Options{PCRs: []int{24}}},
		{"negative PCR", Options{PCRs: []int{-1}}},
		{"handle base below the persistent range", Options{HandleBase: 0x80000000}},
		{"handle range past the persistent range", Options{HandleBase: 0x817FFFF0}},
		{"unknown scheme", Options{Device: "mssim:localhost:2321"}},
		{"bad tcp address", Options{Device: "tcp:nohostport"}},
		{"empty unix path", Options{Device: "unix:"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if _, err := New(c.opts); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	for _, dev := range []string{"/nonexistent/tpmrm0", "unix:/nonexistent/swtpm.sock", "tcp:127.0.0.1:1"} {
		b, err := New(Options{Device: dev})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Provision(ctx, secret); !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("%s: err = %v, want ErrUnavailable", dev, err)
		}
	}
}

func TestEmptySecretRefused(t *testing.T) {
	b := newSim(t, Options{})
	if _, err := b.Provision(ctx, nil); err == nil {
		t.Fatal("provisioned with an empty secret")
	}
	if n := persistentCount(t); n != 0 {
		t.Fatalf("%d persistent objects left behind", n)
	}
}

func TestCancelledContext(t *testing.T) {
	b, _, s := simStore(t, Options{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Provision(cctx, secret); !errors.Is(err, context.Canceled) {
		t.Fatalf("Provision: %v", err)
	}
	if _, err := s.Seal(cctx, "l", key32); !errors.Is(err, context.Canceled) {
		t.Fatalf("Seal: %v", err)
	}
}

// The boot-state gate: a store bound to PCRs stops unsealing when a PCR is
// extended, and works again after a reboot restores the measured state.
func TestPCRPolicy(t *testing.T) {
	b := newSim(t, Options{PCRs: []int{16, 23}})
	if !b.Capabilities().Enforces(backend.GateBootState) {
		t.Fatal("boot_state not reported")
	}
	st := mustProvision(t, b)
	s := mustOpen(t, b, st)
	sealed := mustSeal(t, s, "enigm/v1/kek/identity", key32)

	extendPCR(t, 16, "a debugger was attached")
	if _, err := s.Unseal(ctx, "enigm/v1/kek/identity", sealed); !errors.Is(err, ErrBootState) || !errors.Is(err, backend.ErrGate) || errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("Unseal after PCR extend: err = %v, want ErrBootState", err)
	}
	if _, err := b.Open(ctx, st, secret); !errors.Is(err, ErrBootState) {
		t.Fatalf("Open after PCR extend: err = %v, want ErrBootState", err)
	}
	if n := lockoutCounter(t); n != 0 {
		t.Fatalf("boot-state failures counted as %d dictionary-attack failures", n)
	}

	rebootSim(t) // PCRs back to their boot values
	s2 := mustOpen(t, b, st)
	got, err := s2.Unseal(ctx, "enigm/v1/kek/identity", sealed)
	if err != nil || !bytes.Equal(got, key32) {
		t.Fatalf("after reboot: %x, %v", got, err)
	}

	// The state records the selection; a backend configured otherwise
	// refuses rather than misreport its gates.
	for _, pcrs := range [][]int{nil, {16}, {7, 16, 23}} {
		other, err := New(Options{Open: openSim, PCRs: pcrs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Open(ctx, st, secret); !errors.Is(err, backend.ErrState) {
			t.Fatalf("PCRs %v: err = %v, want ErrState", pcrs, err)
		}
	}
	// Removing the PCR binding from the state is detected before the TPM
	// is asked anything.
	stripped := editState(t, st, func(s *format.State) { s.PCRMask, s.PCRDigest = 0, nil })
	nopcr, _ := New(Options{Open: openSim})
	if _, err := nopcr.Open(ctx, stripped, secret); !errors.Is(err, backend.ErrState) {
		t.Fatalf("stripped PCR binding: err = %v, want ErrState", err)
	}
}

// Destroy makes earlier copies of the state and of sealed blobs useless,
// including in sessions that are still open.
func TestDestroy(t *testing.T) {
	b := newSim(t, Options{})
	st := mustProvision(t, b)
	stCopy := bytes.Clone(st)
	s := mustOpen(t, b, st)
	sealed := mustSeal(t, s, "enigm/v1/kek/identity", key32)
	blob, signer := testkit.BindingKey(t, s)
	if n := persistentCount(t); n != 1 {
		t.Fatalf("%d persistent objects, want 1", n)
	}

	if err := b.Destroy(ctx, st); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if n := persistentCount(t); n != 0 {
		t.Fatalf("%d persistent objects after Destroy", n)
	}
	if _, err := b.Open(ctx, stCopy, secret); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("Open of a copy: err = %v, want ErrDestroyed", err)
	}
	if _, err := s.Unseal(ctx, "enigm/v1/kek/identity", sealed); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("Unseal in an open session: err = %v, want ErrDestroyed", err)
	}
	digest := sha256Sum([]byte("m"))
	if _, err := signer.Sign(nil, digest, crypto.SHA256); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("Sign after Destroy: err = %v, want ErrDestroyed", err)
	}
	if _, err := s.LoadBindingKey(ctx, blob); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("LoadBindingKey after Destroy: err = %v, want ErrDestroyed", err)
	}
	if err := b.Destroy(ctx, stCopy); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}

	// A new store may take the freed handle; the old state still finds
	// no key of its own there.
	st2 := mustProvision(t, b)
	a, _ := format.ParseState(st)
	c, _ := format.ParseState(st2)
	if a.Handle != c.Handle {
		t.Fatalf("handle not reused: 0x%x then 0x%x", a.Handle, c.Handle)
	}
	if _, err := b.Open(ctx, stCopy, secret); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("Open with the handle reused: err = %v, want ErrDestroyed", err)
	}
	if err := b.Destroy(ctx, stCopy); err != nil {
		t.Fatalf("Destroy of a destroyed store: %v", err)
	}
	mustOpen(t, b, st2) // the other store is untouched
}

// Destroy finds the store key by its Name even when the state's handle was
// altered.
func TestDestroyByName(t *testing.T) {
	b := newSim(t, Options{})
	st := mustProvision(t, b)
	moved := editState(t, st, func(s *format.State) { s.Handle = DefaultHandleBase + 77 })
	testkit.NoErr(t, b.Destroy(ctx, moved))
	if _, err := b.Open(ctx, st, secret); !errors.Is(err, backend.ErrDestroyed) {
		t.Fatalf("err = %v, want ErrDestroyed", err)
	}
}

func TestHandleAllocation(t *testing.T) {
	b := newSim(t, Options{HandleBase: DefaultHandleBase + 10})
	var handles []uint32
	for i := 0; i < 3; i++ {
		p, err := format.ParseState(mustProvision(t, b))
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, p.Handle)
	}
	want := []uint32{DefaultHandleBase + 10, DefaultHandleBase + 11, DefaultHandleBase + 12}
	if !slices.Equal(handles, want) {
		t.Fatalf("handles %x, want %x", handles, want)
	}
}

// Wrong secrets count towards the TPM's lockout, which maps to
// ErrLockedOut and blocks even the right secret until reset.
func TestLockout(t *testing.T) {
	b := newSim(t, Options{})
	st := mustProvision(t, b)
	setDA(t, 3, 1000)
	for i := 0; i < 3; i++ {
		if _, err := b.Open(ctx, st, wrong); !errors.Is(err, backend.ErrBadSecret) {
			t.Fatalf("attempt %d: err = %v, want ErrBadSecret", i, err)
		}
	}
	if _, err := b.Open(ctx, st, wrong); !errors.Is(err, backend.ErrLockedOut) {
		t.Fatalf("after maxTries: err = %v, want ErrLockedOut", err)
	}
	if _, err := b.Open(ctx, st, secret); !errors.Is(err, backend.ErrLockedOut) {
		t.Fatalf("right secret while locked out: err = %v, want ErrLockedOut", err)
	}
	setDA(t, 3, 1000) // the owner of the lockout hierarchy resets it
	mustOpen(t, b, st)
}

// Corrupt states and tampered blobs are refused without touching the
// TPM's dictionary-attack counter.
func TestTamperNoLockout(t *testing.T) {
	b, st, s := simStore(t, Options{})
	sealed := mustSeal(t, s, "enigm/v1/kek/kem", key32)
	bk, _ := testkit.BindingKey(t, s)
	other := mustProvision(t, b)

	states := map[string][]byte{
		"salt":          editState(t, st, func(s *format.State) { s.Salt[0] ^= 1 }),
		"store name":    editState(t, st, func(s *format.State) { s.StoreName[5] ^= 1 }),
		"handle":        editState(t, st, func(s *format.State) { s.Handle++ }),
		"check private": editState(t, st, func(s *format.State) { s.CheckPrivate[40] ^= 1 }),
		"check public":  editState(t, st, func(s *format.State) { s.CheckPublic[len(s.CheckPublic)-1] ^= 1 }),
		"other's check": editState(t, st, func(s *format.State) {
			o, _ := format.ParseState(other)
			s.CheckPublic, s.CheckPrivate = o.CheckPublic, o.CheckPrivate
		}),
		"other's salt":   editState(t, st, func(s *format.State) { o, _ := format.ParseState(other); s.Salt = o.Salt }),
		"version":        editState(t, st, func(s *format.State) { s.Version = 2 }),
		"truncated":      st[:len(st)-1],
		"trailing bytes": append(bytes.Clone(st), 0),
	}
	for desc, bad := range states {
		_, err := b.Open(ctx, bad, secret)
		if err == nil {
			t.Fatalf("%s: opened", desc)
		}
		if errors.Is(err, backend.ErrBadSecret) || errors.Is(err, backend.ErrLockedOut) {
			t.Fatalf("%s: err = %v: a corrupt state looks like a wrong secret", desc, err)
		}
	}
	blobs := map[string][]byte{
		"private":      editObject(t, sealed, func(o *format.Object) { o.Private[50] ^= 1 }),
		"policy":       editObject(t, sealed, func(o *format.Object) { o.Public[12] ^= 1 }),
		"kind":         editObject(t, sealed, func(o *format.Object) { o.Kind = format.KindBinding }),
		"binding blob": bk,
		"swapped public": editObject(t, sealed, func(o *format.Object) {
			o2, _ := format.ParseObject(mustSeal(t, s, "enigm/v1/kek/kem", key32), format.KindSealed)
			o.Public = o2.Public
		}),
	}
	for desc, bad := range blobs {
		if _, err := s.Unseal(ctx, "enigm/v1/kek/kem", bad); !errors.Is(err, backend.ErrSealedData) {
			t.Fatalf("%s: err = %v, want ErrSealedData", desc, err)
		}
	}
	if _, err := s.LoadBindingKey(ctx, sealed); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("sealed blob as binding key: err = %v", err)
	}
	if _, err := s.LoadBindingKey(ctx, editObject(t, bk, func(o *format.Object) { o.Private[50] ^= 1 })); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("tampered binding key: err = %v", err)
	}
	if n := lockoutCounter(t); n != 0 {
		t.Fatalf("tampering caused %d dictionary-attack failures", n)
	}
	mustOpen(t, b, st)
}

func TestSealLimits(t *testing.T) {
	_, _, s := simStore(t, Options{})
	if _, err := s.Seal(ctx, "x", nil); err == nil {
		t.Fatal("sealed an empty secret")
	}
	for _, n := range []int{1, 128} {
		pt := bytes.Repeat([]byte{7}, n)
		got, err := s.Unseal(ctx, "x", mustSeal(t, s, "x", pt))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: %x, %v", n, got, err)
		}
	}
	if _, err := s.Seal(ctx, "x", make([]byte, 129)); !errors.Is(err, backend.ErrTooLarge) {
		t.Fatalf("129 bytes: %v", err)
	}
}

// The binding key's public area, read back from the TPM, says it was
// generated inside and cannot leave; it signs only SHA-256 digests.
func TestBindingKeyAttributes(t *testing.T) {
	b, _, s := simStore(t, Options{})
	blob, key := testkit.BindingKey(t, s)
	obj, err := format.ParseObject(blob, format.KindBinding)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	h, err := s.loadBinding(s.t, obj)
	if err != nil {
		s.mu.Unlock()
		t.Fatal(err)
	}
	rp, err := (tpm2.ReadPublic{ObjectHandle: h.Handle}).Execute(s.t)
	flush(s.t, h.Handle)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rp.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	a := pub.ObjectAttributes
	if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.UserWithAuth || !a.SignEncrypt || a.Decrypt || a.Restricted || a.NoDA {
		t.Fatalf("attributes %+v", a)
	}
	if k, err := format.P256Public(pub); err != nil || !k.Equal(key.Public()) {
		t.Fatalf("TPM public key differs from the signer's: %v", err)
	}

	digest := sha256Sum([]byte("bind"))
	if _, err := key.Sign(rand.Reader, digest, crypto.SHA384); err == nil {
		t.Fatal("signed with SHA-384 opts")
	}
	if _, err := key.Sign(rand.Reader, digest[:20], crypto.SHA256); err == nil {
		t.Fatal("signed a short digest")
	}
	sig, err := key.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), digest, sig) {
		t.Fatalf("sign: %v", err)
	}

	// Another store's session cannot load it; a closed session cannot sign.
	other := mustOpen(t, b, mustProvision(t, b))
	if _, err := other.LoadBindingKey(ctx, blob); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("foreign store: err = %v, want ErrSealedData", err)
	}
	s.Close()
	if _, err := key.Sign(rand.Reader, digest, crypto.SHA256); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("closed session: err = %v, want ErrClosed", err)
	}
}

// The binding key's auth value comes from the unlock secret: the TPM
// refuses to sign for a session that knows another secret.
func TestBindingKeyNeedsSecret(t *testing.T) {
	_, st, s := simStore(t, Options{})
	_, key := testkit.BindingKey(t, s)
	p, _ := format.ParseState(st)
	s.mu.Lock()
	s.bindAuth = deriveAuth(wrong, p.Salt, infoBind)
	s.mu.Unlock()
	if _, err := key.Sign(nil, sha256Sum([]byte("x")), crypto.SHA256); !errors.Is(err, backend.ErrBadSecret) {
		t.Fatalf("err = %v, want ErrBadSecret", err)
	}
}

func TestDeriveAuth(t *testing.T) {
	salt := make([]byte, 32)
	seen := map[string]bool{}
	for i := 0; i < 300; i++ {
		salt[0], salt[1] = byte(i), byte(i>>8)
		a := deriveAuth(secret, salt, infoSeal)
		if len(a) != 32 || bytes.IndexByte(a, 0) >= 0 {
			t.Fatalf("auth %x: wrong size or holds a zero byte", a)
		}
		if bytes.Equal(a, deriveAuth(secret, salt, infoBind)) || bytes.Equal(a, deriveAuth(wrong, salt, infoSeal)) {
			t.Fatal("auth values not separated")
		}
		seen[string(a)] = true
	}
	if len(seen) != 300 {
		t.Fatal("auth values repeat")
	}
}

func TestP256PublicRejects(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := k.PublicKey.Bytes()
	pub := bindingTemplate()
	pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: raw[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: raw[33:]}})
	if got, err := format.P256Public(&pub); err != nil || !got.Equal(&k.PublicKey) {
		t.Fatalf("valid point: %v", err)
	}
	y := bytes.Clone(raw[33:])
	y[31] ^= 1
	pub.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{X: tpm2.TPM2BECCParameter{Buffer: raw[1:33]}, Y: tpm2.TPM2BECCParameter{Buffer: y}})
	if _, err := format.P256Public(&pub); err == nil {
		t.Fatal("accepted a point off the curve")
	}
}

// Formatting a session or a signer never prints the derived auth values.
func TestNoSecretsInFormat(t *testing.T) {
	_, _, s := simStore(t, Options{})
	_, key := testkit.BindingKey(t, s)
	for _, v := range []any{s, key} {
		if err := redact.Leak(v, s.sealAuth, s.bindAuth, secret); err != nil {
			t.Error(err)
		}
	}
}
