package tpm

import (
	"bytes"
	"crypto/rand"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/attest"
	"github.com/enigm/enigm/backend/tpm/internal/format"
	"github.com/enigm/enigm/internal/testkit"
)

func nonce(t *testing.T) []byte {
	n := make([]byte, 32)
	rand.Read(n)
	return n
}

func TestAttestRoundTrip(t *testing.T) {
	for _, pcrs := range [][]int{nil, {0, 7, 16}} {
		b := newSim(t, Options{PCRs: pcrs})
		ak, err := b.AttestationKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ak2, err := b.AttestationKey(ctx)
		if err != nil || !bytes.Equal(ak, ak2) {
			t.Fatalf("attestation key not stable: %v", err)
		}
		st := mustProvision(t, b)
		s := mustOpen(t, b, st)
		blob, key := testkit.BindingKey(t, s)
		n := nonce(t)
		ev := testkit.Attest(t, s, blob, n)
		if ev.Type != "tpm2-certify" {
			t.Fatalf("type %q", ev.Type)
		}
		res, err := attest.Verify(ev, n, ak)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		akKey, err := ak.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if !res.Key.Equal(key.Public()) || !res.AttestationKey.Equal(akKey) {
			t.Fatal("verified key is not the binding key")
		}
		p, _ := format.ParseState(st)
		if pcrs == nil {
			if res.PCRs != nil || res.PCRDigest != nil {
				t.Fatalf("quote without PCRs: %+v", res)
			}
			continue
		}
		if !slices.Equal(res.PCRs, pcrs) || !bytes.Equal(res.PCRDigest, p.PCRDigest) {
			t.Fatalf("quote: PCRs %v digest %x, want %v %x", res.PCRs, res.PCRDigest, pcrs, p.PCRDigest)
		}
	}
}

func TestAttestNegatives(t *testing.T) {
	b := newSim(t, Options{PCRs: []int{16}})
	ak, err := b.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, b, mustProvision(t, b))
	blob, _ := testkit.BindingKey(t, s)
	n := nonce(t)
	ev := testkit.Attest(t, s, blob, n)
	otherBlob, _ := testkit.BindingKey(t, s)
	otherEv := testkit.Attest(t, s, otherBlob, n)
	// Same key, other attributes: not the trusted AK.
	pa, _ := format.ParsePublic(ak)
	pa.ObjectAttributes.Restricted = false
	stranger := attest.AK(tpm2.Marshal(*pa))

	edit := func(f func(e *format.Evidence)) backend.Evidence {
		return backend.Evidence{Type: ev.Type, Data: reencode(t, ev.Data, format.ParseEvidence, f)}
	}
	oe, _ := format.ParseEvidence(otherEv.Data)
	cases := []struct {
		desc    string
		ev      backend.Evidence
		nonce   []byte
		trusted []attest.AK
		wantErr error
	}{
		{"wrong nonce", ev, nonce(t), []attest.AK{ak}, attest.ErrNonce},
		{"empty nonce", ev, nil, []attest.AK{ak}, attest.ErrNonce},
		{"untrusted key", ev, n, []attest.AK{stranger}, attest.ErrUntrusted},
		{"no trusted key", ev, n, nil, attest.ErrUntrusted},
		{"wrong type", backend.Evidence{Type: "tpm2-quote", Data: ev.Data}, n, []attest.AK{ak}, attest.ErrInvalid},
		{"another key's public area", edit(func(e *format.Evidence) { e.KeyPublic = oe.KeyPublic }), n, []attest.AK{ak}, attest.ErrInvalid},
		{"another key's certification", edit(func(e *format.Evidence) { e.CertifyInfo, e.CertifySig = oe.CertifyInfo, oe.CertifySig }), n, []attest.AK{ak}, attest.ErrInvalid},
		{"certify signature swapped", edit(func(e *format.Evidence) { e.CertifySig = oe.CertifySig }), n, []attest.AK{ak}, attest.ErrInvalid},
		{"quote as certification", edit(func(e *format.Evidence) { e.CertifyInfo, e.CertifySig = e.Quote, e.QuoteSig }), n, []attest.AK{ak}, attest.ErrInvalid},
		{"certification as quote", edit(func(e *format.Evidence) { e.Quote, e.QuoteSig = e.CertifyInfo, e.CertifySig }), n, []attest.AK{ak}, attest.ErrInvalid},
		{"quote dropped half", edit(func(e *format.Evidence) { e.QuoteSig = nil }), n, []attest.AK{ak}, attest.ErrInvalid},
		{"version", edit(func(e *format.Evidence) { e.Version = 2 }), n, []attest.AK{ak}, attest.ErrInvalid},
		{"binding key presented as AK", edit(func(e *format.Evidence) { e.AKPublic = e.KeyPublic }), n, []attest.AK{ak}, attest.ErrUntrusted},
		{"binding key trusted as AK", edit(func(e *format.Evidence) { e.AKPublic = e.KeyPublic }), n, []attest.AK{attest.AK(e0(t, ev).KeyPublic)}, attest.ErrInvalid},
		{"unrestricted AK trusted", edit(func(e *format.Evidence) { e.AKPublic = stranger }), n, []attest.AK{stranger}, attest.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			_, err := attest.Verify(c.ev, c.nonce, c.trusted...)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
		})
	}

	// Every single-bit change is rejected.
	for i := range ev.Data {
		bad := bytes.Clone(ev.Data)
		bad[i] ^= 0x01
		if _, err := attest.Verify(backend.Evidence{Type: ev.Type, Data: bad}, n, ak); err == nil {
			t.Fatalf("flipped bit in byte %d of %d: verified", i, len(ev.Data))
		}
	}

	for _, l := range []int{0, 15, 65} {
		if _, err := s.Attest(ctx, blob, make([]byte, l)); err == nil {
			t.Fatalf("nonce of %d bytes accepted", l)
		}
	}
	if _, err := s.Attest(ctx, editObject(t, blob, func(o *format.Object) { o.Private[40] ^= 1 }), n); !errors.Is(err, backend.ErrSealedData) {
		t.Fatalf("tampered blob: %v", err)
	}
	s.Close()
	if _, err := s.Attest(ctx, blob, n); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

// A key the TPM certifies but that could leave it (no fixedTPM/fixedParent,
// imported rather than generated) is refused by the verifier even with a
// valid signature by the trusted attestation key.
func TestAttestRejectsExportableKey(t *testing.T) {
	b := newSim(t, Options{})
	ak, err := b.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tp := simConn{}
	srk, err := (tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(srkTemplate())}).Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer flush(tp, srk.ObjectHandle)
	tmpl := bindingTemplate()
	tmpl.ObjectAttributes.FixedTPM = false
	tmpl.ObjectAttributes.FixedParent = false
	tmpl.ObjectAttributes.AdminWithPolicy = false
	created, err := (tpm2.CreateLoaded{
		ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2BTemplate(&tmpl),
	}).Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer flush(tp, created.ObjectHandle)
	akh, akPub, err := b.createAK(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer flush(tp, akh.Handle)
	n := nonce(t)
	cert, err := (tpm2.Certify{
		ObjectHandle:   tpm2.AuthHandle{Handle: created.ObjectHandle, Name: created.Name, Auth: tpm2.PasswordAuth(nil)},
		SignHandle:     tpm2.AuthHandle{Handle: akh.Handle, Name: akh.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: n},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
	}).Execute(tp)
	if err != nil {
		t.Fatal(err)
	}
	data, err := format.MarshalEvidence(&format.Evidence{
		Version: 1, AKPublic: akPub, KeyPublic: created.OutPublic.Bytes(),
		CertifyInfo: cert.CertifyInfo.Bytes(), CertifySig: tpm2.Marshal(cert.Signature),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = attest.Verify(backend.Evidence{Type: "tpm2-certify", Data: data}, n, ak)
	if !errors.Is(err, attest.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func e0(t *testing.T, ev backend.Evidence) *format.Evidence {
	e, err := format.ParseEvidence(ev.Data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
