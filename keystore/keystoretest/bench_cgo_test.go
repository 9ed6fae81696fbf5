//go:build cgo

package keystoretest

import (
	"crypto/sha256"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend/pkcs11/pkcs11test"
	"github.com/enigm/enigm/internal/testkit"
)

// benchTokenSign adds the PKCS#11 cases to BenchmarkSign:
//
//   - pkcs11-p256-C_Sign/softhsm2: what a user would otherwise pick: an EC
//     P-256 key pair generated on the token, and per signature SHA-256 of
//     the message in Go, then C_SignInit + C_Sign (CKM_ECDSA) on the token.
//   - keystore-binding-p256/softhsm2: the keystore's hardware binding key
//     on the same kind of token: policy, audit, C_Sign, DER encoding and
//     verification of the token's signature.
func benchTokenSign(b *testing.B) {
	b.Run("pkcs11-p256-C_Sign/softhsm2", func(b *testing.B) {
		su := pkcs11test.Full
		hsmCtx, sh, done := su.Session(b, su.Token(b))
		defer done()
		params := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // OID 1.2.840.10045.3.1.7
		pub := []*p11.Attribute{
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_VERIFY, true),
			p11.NewAttribute(p11.CKA_EC_PARAMS, params),
		}
		priv := []*p11.Attribute{
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SIGN, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		}
		_, key, err := hsmCtx.GenerateKeyPair(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_EC_KEY_PAIR_GEN, nil)}, pub, priv)
		if err != nil {
			b.Fatal(err)
		}
		mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_ECDSA, nil)}
		for b.Loop() {
			d := sha256.Sum256(benchMsg)
			testkit.NoErr(b, hsmCtx.SignInit(sh, mech, key))
			if sig, err := hsmCtx.Sign(sh, d[:]); err != nil || len(sig) != 64 {
				b.Fatalf("C_Sign: %d bytes, %v", len(sig), err)
			}
		}
	})
	b.Run("keystore-binding-p256/softhsm2", func(b *testing.B) {
		s := initStore(b, hsmMaker().new(b))
		bk, err := s.Binding()
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			d := sha256.Sum256(benchMsg)
			if _, err := bk.Sign(appPurpose("bind"), d[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
