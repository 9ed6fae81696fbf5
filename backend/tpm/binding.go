package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/internal/format"
)

// CreateBindingKey creates an ECDSA P-256 key inside the TPM under the
// store key. The blob holds its public area and its TPM-encrypted private
// area; the key's auth value derives from the unlock secret.
func (s *session) CreateBindingKey(ctx context.Context) ([]byte, crypto.Signer, error) {
	t, err := s.lock(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer s.mu.Unlock()
	rsp, err := (tpm2.Create{
		ParentHandle: s.key.parentAuth(),
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			UserAuth: tpm2.TPM2BAuth{Buffer: s.bindAuth},
		}},
		InPublic: tpm2.New2B(bindingTemplate()),
	}).Execute(t)
	if err != nil {
		return nil, nil, createErr("creating the binding key", err)
	}
	obj := &format.Object{Kind: format.KindBinding, Public: slices.Clone(rsp.OutPublic.Bytes()), Private: slices.Clone(rsp.OutPrivate.Buffer)}
	pub, err := bindingPublic(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the TPM created a binding key unlike the template: %v", backend.ErrUnavailable, err)
	}
	blob, err := format.MarshalObject(obj)
	if err != nil {
		return nil, nil, err
	}
	return blob, &signer{s: s, obj: obj, pub: pub}, nil
}

// LoadBindingKey checks a binding-key blob and that the TPM accepts it
// under this store, and returns its signer.
func (s *session) LoadBindingKey(ctx context.Context, blob []byte) (crypto.Signer, error) {
	obj, pub, err := parseBinding(blob)
	if err != nil {
		return nil, err
	}
	t, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	h, err := s.loadBinding(t, obj)
	if err != nil {
		return nil, err
	}
	flush(t, h.Handle)
	return &signer{s: s, obj: obj, pub: pub}, nil
}

func parseBinding(blob []byte) (*format.Object, *ecdsa.PublicKey, error) {
	obj, err := format.ParseObject(blob, format.KindBinding)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: binding key: %v", backend.ErrSealedData, err)
	}
	pub, err := bindingPublic(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: binding key: %v", backend.ErrSealedData, err)
	}
	return obj, pub, nil
}

func bindingPublic(obj *format.Object) (*ecdsa.PublicKey, error) {
	p, err := matchTemplate(obj.Public, bindingTemplate())
	if err != nil {
		return nil, err
	}
	return p256Key(p)
}

// loadBinding loads a binding key; the caller flushes it.
func (s *session) loadBinding(t transport.TPM, obj *format.Object) (tpm2.NamedHandle, error) {
	rsp, err := (tpm2.Load{
		ParentHandle: s.key.loadAuth(),
		InPrivate:    tpm2.TPM2BPrivate{Buffer: obj.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](obj.Public),
	}).Execute(t)
	if err != nil {
		return tpm2.NamedHandle{}, loadErr("loading the binding key", err, backend.ErrSealedData)
	}
	if !bytesEqual(rsp.Name.Buffer, format.Name(obj.Public)) {
		flush(t, rsp.ObjectHandle)
		return tpm2.NamedHandle{}, fmt.Errorf("%w: the TPM reports another name for the binding key", backend.ErrUnavailable)
	}
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, nil
}

// signer is a binding key. It signs inside the TPM while its session is
// open; the key is loaded for each signature, so Destroy takes effect at
// once and no TPM object slot stays taken.
type signer struct {
	s   *session
	obj *format.Object
	pub *ecdsa.PublicKey
}

var _ crypto.Signer = (*signer)(nil)

func (k *signer) Public() crypto.PublicKey { return k.pub }

// errHash reports a digest the binding key does not sign.
var errHash = errors.New("tpm: the binding key signs SHA-256 digests only")

// Sign signs a SHA-256 digest in the TPM and returns an ASN.1 DER ECDSA
// signature, verified against the public key before it is returned.
func (k *signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil || opts.HashFunc() != crypto.SHA256 || len(digest) != 32 {
		return nil, errHash
	}
	t, err := k.s.lock(context.Background())
	if err != nil {
		return nil, err
	}
	defer k.s.mu.Unlock()
	h, err := k.s.loadBinding(t, k.obj)
	if err != nil {
		return nil, err
	}
	defer flush(t, h.Handle)
	rsp, err := (tpm2.Sign{
		KeyHandle: tpm2.AuthHandle{Handle: h.Handle, Name: h.Name, Auth: k.s.key.salted(k.s.bindAuth)},
		Digest:    tpm2.TPM2BDigest{Buffer: digest},
		InScheme: tpm2.TPMTSigScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
		},
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}).Execute(t)
	if err != nil {
		return nil, authErr("signing with the binding key", err, backend.ErrUnavailable)
	}
	sig, err := ecdsaDER(&rsp.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", backend.ErrUnavailable, err)
	}
	if !ecdsa.VerifyASN1(k.pub, digest, sig) {
		return nil, fmt.Errorf("%w: the TPM returned a signature that does not verify", backend.ErrHardwareFault)
	}
	return sig, nil
}

// ecdsaDER encodes a TPM ECDSA signature as ASN.1 DER.
func ecdsaDER(sig *tpm2.TPMTSignature) ([]byte, error) {
	if sig.SigAlg != tpm2.TPMAlgECDSA {
		return nil, fmt.Errorf("signature algorithm 0x%04x, want ECDSA", sig.SigAlg)
	}
	e, err := sig.Signature.ECDSA()
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(e.SignatureR.Buffer))
		b.AddASN1BigInt(new(big.Int).SetBytes(e.SignatureS.Buffer))
	})
	return b.Bytes()
}
