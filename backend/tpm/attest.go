package tpm

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/attest"
	"github.com/enigm/enigm/backend/tpm/internal/format"
)

// Nonce bounds for Attest: a TPM2B_DATA holds at most 64 bytes of
// qualifying data here; fewer than 16 would not be a nonce.
const (
	MinNonce = 16
	MaxNonce = 64
)

// createAK creates the attestation key, a restricted signing primary in
// the endorsement hierarchy; the caller flushes it.
func (b *Backend) createAK(t transport.TPM) (tpm2.NamedHandle, []byte, error) {
	rsp, err := (tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth(b.endorsementAuth))},
		InPublic:      tpm2.New2B(akTemplate()),
	}).Execute(t)
	if err != nil {
		return tpm2.NamedHandle{}, nil, hierarchyErr("creating the attestation key", err)
	}
	pub := slices.Clone(rsp.OutPublic.Bytes())
	if _, err := matchTemplate(pub, akTemplate()); err != nil || !bytesEqual(format.Name(pub), rsp.Name.Buffer) {
		flush(t, rsp.ObjectHandle)
		return tpm2.NamedHandle{}, nil, fmt.Errorf("%w: the TPM created an attestation key unlike the template", backend.ErrUnavailable)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, pub, nil
}

// AttestationKey returns this TPM's attestation key: the public area of a
// restricted P-256 signing key derived from the endorsement seed with a
// fixed template. A verifier configured to trust it accepts this TPM's
// evidence; with real TPMs, trust in it comes from the endorsement
// certificate chain, established at enrollment.
func (b *Backend) AttestationKey(ctx context.Context) (attest.AK, error) {
	t, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer t.Close()
	ak, pub, err := b.createAK(t)
	if err != nil {
		return nil, err
	}
	flush(t, ak.Handle)
	return attest.AK(pub), nil
}

// Attest certifies with TPM2_Certify, by the attestation key and over
// nonce, that the binding key in bindingBlob lives in this TPM with
// fixedTPM, fixedParent and sensitiveDataOrigin. When the store is bound to
// PCRs, the evidence also holds a TPM2_Quote of them over the same nonce.
// The evidence is checked with [attest.Verify] before it is returned.
func (s *session) Attest(ctx context.Context, bindingBlob, nonce []byte) (backend.Evidence, error) {
	if len(nonce) < MinNonce || len(nonce) > MaxNonce {
		return backend.Evidence{}, fmt.Errorf("tpm: nonce of %d bytes, want %d–%d", len(nonce), MinNonce, MaxNonce)
	}
	obj, _, err := parseBinding(bindingBlob)
	if err != nil {
		return backend.Evidence{}, err
	}
	t, err := s.lock(ctx)
	if err != nil {
		return backend.Evidence{}, err
	}
	defer s.mu.Unlock()

	key, err := s.loadBinding(t, obj)
	if err != nil {
		return backend.Evidence{}, err
	}
	defer flush(t, key.Handle)
	ak, akPub, err := s.b.createAK(t)
	if err != nil {
		return backend.Evidence{}, err
	}
	defer flush(t, ak.Handle)

	cert, err := (tpm2.Certify{
		// TPM2_Certify needs the certified object's admin role: its auth
		// value, so attesting requires the unlock secret too.
		ObjectHandle:   tpm2.AuthHandle{Handle: key.Handle, Name: key.Name, Auth: s.key.salted(s.bindAuth)},
		SignHandle:     tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: nonce},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
	}).Execute(t)
	if err != nil {
		return backend.Evidence{}, authErr("certifying the binding key", err, backend.ErrUnavailable)
	}
	ev := &format.Evidence{
		Version:     format.EvidenceVersion,
		AKPublic:    akPub,
		KeyPublic:   obj.Public,
		CertifyInfo: slices.Clone(cert.CertifyInfo.Bytes()),
		CertifySig:  tpm2.Marshal(cert.Signature),
	}
	if s.pol.mask != 0 {
		q, err := (tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: nonce},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect:      s.pol.selection(),
		}).Execute(t)
		if err != nil {
			return backend.Evidence{}, tpmErr("quoting PCRs", err)
		}
		ev.Quote = slices.Clone(q.Quoted.Bytes())
		ev.QuoteSig = tpm2.Marshal(q.Signature)
	}
	data, err := format.MarshalEvidence(ev)
	if err != nil {
		return backend.Evidence{}, fmt.Errorf("%w: the TPM's evidence is malformed: %v", backend.ErrUnavailable, err)
	}
	out := backend.Evidence{Type: EvidenceType, Data: data}
	if _, err := attest.Verify(out, nonce, attest.AK(akPub)); err != nil {
		return backend.Evidence{}, fmt.Errorf("%w: the TPM's evidence does not verify: %v", backend.ErrHardwareFault, err)
	}
	return out, nil
}
