package simulated

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"time"

	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/internal/keymint"
)

// authority is the simulated attestation hierarchy: a root (what a
// verifier trusts, like Google's attestation roots) and a batch key that
// signs the leaf certificate of each attested key.
type authority struct {
	root     *x509.Certificate
	batch    *x509.Certificate
	batchKey *ecdsa.PrivateKey
	serial   int64
}

func newAuthority(name string, now time.Time) *authority {
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	batchKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(20, 0, 0),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	}
	rootT := ca(1, name+" simulated attestation root")
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, &rootKey.PublicKey, rootKey)
	if err != nil {
		panic(err) // fixed, valid templates
	}
	root, _ := x509.ParseCertificate(rootDER)
	batchDER, err := x509.CreateCertificate(rand.Reader, ca(2, name+" simulated batch attestation key"), root, &batchKey.PublicKey, rootKey)
	if err != nil {
		panic(err)
	}
	batch, _ := x509.ParseCertificate(batchDER)
	return &authority{root: root, batch: batch, batchKey: batchKey, serial: 100}
}

// Android KeyMint values (see the key attestation schema).
const (
	securityLevelTEE       = 1
	securityLevelStrongBox = 2
	keyMintVersion         = 300
)

// explicit encodes v under an EXPLICIT context-specific tag.
func explicit(tag int, v any) asn1.RawValue {
	inner, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: inner}
}

func explicitSet(tag int, v []int) asn1.RawValue {
	inner, err := asn1.MarshalWithParams(v, "set")
	if err != nil {
		panic(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tag, IsCompound: true, Bytes: inner}
}

func sequence(elems ...asn1.RawValue) asn1.RawValue {
	var body []byte
	for _, e := range elems {
		b, err := asn1.Marshal(e)
		if err != nil {
			panic(err)
		}
		body = append(body, b...)
	}
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body}
}

// attest issues the leaf certificate of a P-256 key: its public key, and
// the KeyDescription extension with the challenge and the authorizations
// the hardware enforces. It returns leaf || batch as DER.
func (a *authority) attest(k *key, level string, now time.Time) ([]byte, error) {
	sl := asn1.Enumerated(securityLevelTEE)
	if level == bridge.LevelStrongBox {
		sl = securityLevelStrongBox
	}
	var purposes []int
	if k.spec.Sign {
		purposes = append(purposes, 2) // SIGN
	}
	if k.spec.Agree {
		purposes = append(purposes, 6) // AGREE_KEY
	}
	hw := []asn1.RawValue{
		explicitSet(1, purposes), // purpose
		explicit(2, 3),           // algorithm: EC
		explicit(3, 256),         // keySize
		explicitSet(5, []int{4}), // digest: SHA-2 256
		explicit(10, 1),          // ecCurve: P-256
	}
	if k.spec.Auth == 0 {
		hw = append(hw, explicit(503, asn1.NullRawValue)) // noAuthRequired
	} else {
		var t int
		if k.spec.Auth&bridge.AuthDeviceCredential != 0 {
			t |= 1 // PASSWORD
		}
		if k.spec.Auth&bridge.AuthBiometric != 0 {
			t |= 2 // FINGERPRINT (biometric)
		}
		hw = append(hw, explicit(504, t), explicit(505, int(k.spec.AuthValiditySeconds)))
	}
	if k.spec.UnlockedOnly {
		hw = append(hw, explicit(509, asn1.NullRawValue)) // unlockedDeviceRequired
	}
	hw = append(hw, explicit(702, 0)) // origin: GENERATED
	kd := keymint.KeyDescription{AttestationVersion: keyMintVersion, AttestationSecurityLevel: sl, KeyMintVersion: keyMintVersion,
		KeyMintSecurityLevel: sl, AttestationChallenge: k.spec.AttestationChallenge, UniqueID: []byte{},
		SoftwareEnforced: sequence(), HardwareEnforced: sequence(hw...)}
	ext, err := asn1.Marshal(kd)
	if err != nil {
		return nil, err
	}
	a.serial++
	leafT := &x509.Certificate{SerialNumber: big.NewInt(a.serial), Subject: pkix.Name{CommonName: "Android Keystore Key"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.AddDate(20, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 1, 17}, Value: ext}}}
	leaf, err := x509.CreateCertificate(rand.Reader, leafT, a.batch, &k.ec.PublicKey, a.batchKey)
	if err != nil {
		return nil, err
	}
	return append(leaf, a.batch.Raw...), nil
}
