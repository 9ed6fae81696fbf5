package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/enigm/enigm/backend/tpm/internal/format"
)

// Object templates. Every object uses SHA-256 as its name algorithm and
// P-256 where it is a key; nothing here is RSA (slow to create).

// srkTemplate is the TCG reference ECC P-256 storage root key: a primary in
// the owner hierarchy, the same on every call for a given owner seed.
func srkTemplate() tpm2.TPMTPublic { return tpm2.ECCSRKTemplate }

// storeKeyTemplate is the per-store storage key, a child of the SRK that
// exists only as a persistent object: its private blob is never kept, so
// evicting it destroys everything created under it.
func storeKeyTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			Restricted:          true,
			Decrypt:             true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{
				Algorithm: tpm2.TPMAlgAES,
				KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(128)),
				Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// sealedTemplate is a sealed-data (keyed-hash) object usable only through
// its policy: userWithAuth and adminWithPolicy make every role need the
// policy, which requires the unlock secret; noDA is clear, so wrong secrets
// count towards the TPM's dictionary-attack lockout.
func sealedTemplate(policy []byte) tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgKeyedHash,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:        true,
			FixedParent:     true,
			AdminWithPolicy: true,
		},
		AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{}),
	}
}

// bindingTemplate is the hardware binding key: an unrestricted ECDSA P-256
// signing key generated inside the TPM (sensitiveDataOrigin) that cannot be
// duplicated (fixedTPM, fixedParent). Its auth value is derived from the
// unlock secret and it is DA-protected.
func bindingTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
	}
}

// AKTemplate is the attestation key's template: a restricted ECDSA P-256
// signing key, created as a primary in the endorsement hierarchy, so the
// same TPM always yields the same key. Restricted means it signs only
// structures the TPM generated itself (certifications, quotes).
func akTemplate() tpm2.TPMTPublic {
	t := bindingTemplate()
	t.ObjectAttributes.Restricted = true
	t.ObjectAttributes.NoDA = true
	// A fixed, Enigm-specific unique value keeps this primary apart from
	// other software's keys created with the same attributes.
	x := make([]byte, 32)
	copy(x, "enigm/v1/tpm/attestation-key")
	t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: x},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	})
	return t
}

// matchTemplate parses a public area created from tmpl and checks that it
// is tmpl with only the unique field filled in by the TPM.
func matchTemplate(pub []byte, tmpl tpm2.TPMTPublic) (*tpm2.TPMTPublic, error) {
	p, err := format.ParsePublic(pub)
	if err != nil {
		return nil, err
	}
	if p.Type != tmpl.Type {
		return nil, fmt.Errorf("%w: object type 0x%04x, want 0x%04x", format.ErrFormat, p.Type, tmpl.Type)
	}
	want := tmpl
	want.Unique = p.Unique
	if !bytes.Equal(marshalPublic(want), pub) {
		return nil, fmt.Errorf("%w: public area differs from the expected template or policy", format.ErrFormat)
	}
	return p, nil
}

// marshalPublic encodes a public area built or checked by this package.
func marshalPublic(p tpm2.TPMTPublic) (out []byte) {
	defer func() {
		if recover() != nil {
			out = nil
		}
	}()
	return tpm2.Marshal(p)
}

// p256Key returns the ECDSA public key of an ECC P-256 public area.
func p256Key(p *tpm2.TPMTPublic) (*ecdsa.PublicKey, error) { return format.P256Public(p) }
