package pkcs11

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"

	"github.com/enigm/enigm/backend"
)

// Sealed data of the schemes for tokens without CKM_AES_GCM. The layout
// code takes the token operations as functions, so the same code seals on
// a token and, in the golden tests, with software keys of known value.

// schemeCBCHMAC sealed data:
//
//	version 0x02 (1) || iv2 (16) || c2 || tag (32)
//	c2  = AES-256-CBC-PAD(wrapping key[label], iv2, p1)      on the token
//	p1  = iv1 (16) || AES-256-CBC-PAD(destroy key, iv1, p0)  on the token
//	p0  = secret || check (16)
//	tag = HMAC-SHA256(MAC key[label], macInput)              on the token
//	macInput = "enigm/v1/pkcs11/seal/cbc-hmac\x00" || store id ||
//	           u16(len label) || label || version || iv2 || c2
//
// The tag is checked (constant time, in software, against the token's
// C_Sign) before anything is decrypted, so the token never sees forged
// ciphertext and there is no padding oracle. The check value catches a
// token that decrypts to wrong plaintext.
const (
	sealCBCVersion = 2
	cbcBlock       = 16
	macSize        = 32
	// sealed size for a secret of n bytes: 1 + 16 + cbcLen(16+cbcLen(n+16)) + 32
	cbcMinSealed = 1 + cbcBlock + 4*cbcBlock + macSize // 113, an empty secret
)

// cbcLen is the length of CBC-PAD (PKCS#7) ciphertext of n bytes.
func cbcLen(n int) int { return (n/cbcBlock + 1) * cbcBlock }

func cbcSealedLen(n int) int { return 1 + cbcBlock + cbcLen(cbcBlock+cbcLen(n+checkSize)) + macSize }

var cbcMaxSealed = cbcSealedLen(MaxSealSize)

// cbcOps are the token operations of schemeCBCHMAC.
type cbcOps struct {
	encInner, encOuter func(iv, pt []byte) ([]byte, error) // CBC-PAD encryption
	decInner, decOuter func(iv, ct []byte) ([]byte, error) // CBC-PAD decryption
	mac                func(msg []byte) ([]byte, error)    // HMAC-SHA256
}

func cbcMACInput(storeID []byte, label string, body []byte) []byte {
	in := make([]byte, 0, 40+len(storeID)+len(label)+len(body))
	in = append(in, "enigm/v1/pkcs11/seal/cbc-hmac\x00"...)
	in = append(in, storeID...)
	in = binary.BigEndian.AppendUint16(in, uint16(len(label)))
	in = append(in, label...)
	return append(in, body...)
}

// sealCBC builds schemeCBCHMAC sealed data with the IVs given.
func sealCBC(ops cbcOps, storeID []byte, label string, secret, iv1, iv2 []byte) ([]byte, error) {
	p0 := append(append(make([]byte, 0, len(secret)+checkSize), secret...), checkValue(storeID, label, secret)...)
	defer clear(p0)
	c1, err := ops.encInner(iv1, p0)
	if err != nil {
		return nil, err
	}
	if len(c1) != cbcLen(len(p0)) {
		return nil, fmt.Errorf("%w: AES-CBC-PAD encryption of %d bytes returned %d bytes, want %d", ErrTokenFault, len(p0), len(c1), cbcLen(len(p0)))
	}
	p1 := append(append(make([]byte, 0, cbcBlock+len(c1)), iv1...), c1...)
	c2, err := ops.encOuter(iv2, p1)
	if err != nil {
		return nil, err
	}
	if len(c2) != cbcLen(len(p1)) {
		return nil, fmt.Errorf("%w: AES-CBC-PAD encryption of %d bytes returned %d bytes, want %d", ErrTokenFault, len(p1), len(c2), cbcLen(len(p1)))
	}
	out := make([]byte, 0, 1+cbcBlock+len(c2)+macSize)
	out = append(out, sealCBCVersion)
	out = append(out, iv2...)
	out = append(out, c2...)
	tag, err := ops.mac(cbcMACInput(storeID, label, out))
	if err != nil {
		return nil, err
	}
	if len(tag) != macSize {
		return nil, fmt.Errorf("%w: HMAC-SHA256 returned %d bytes", ErrTokenFault, len(tag))
	}
	return append(out, tag...), nil
}

// parseSealedCBC checks the length and version of schemeCBCHMAC sealed data.
func parseSealedCBC(b []byte) error {
	if len(b) < cbcMinSealed || len(b) > cbcMaxSealed || (len(b)-1-macSize)%cbcBlock != 0 {
		return fmt.Errorf("%w: sealed data has %d bytes, not a valid AES-CBC-HMAC length", backend.ErrSealedData, len(b))
	}
	if b[0] != sealCBCVersion {
		return fmt.Errorf("%w: sealed data version %d is not the store's scheme (AES-CBC-HMAC, version %d)", backend.ErrSealedData, b[0], sealCBCVersion)
	}
	return nil
}

// openCBC checks the tag, then decrypts both layers and checks every
// length and the check value.
func openCBC(ops cbcOps, storeID []byte, label string, sealed []byte) ([]byte, error) {
	if err := parseSealedCBC(sealed); err != nil {
		return nil, err
	}
	body, tag := sealed[:len(sealed)-macSize], sealed[len(sealed)-macSize:]
	want, err := ops.mac(cbcMACInput(storeID, label, body))
	if err != nil {
		return nil, err
	}
	if len(want) != macSize {
		return nil, fmt.Errorf("%w: HMAC-SHA256 returned %d bytes", ErrTokenFault, len(want))
	}
	if !equal(want, tag) {
		return nil, fmt.Errorf("%w: the authentication tag does not match (tampered, another store's or another label's data)", backend.ErrSealedData)
	}
	iv2, c2 := body[1:1+cbcBlock], body[1+cbcBlock:]
	p1, err := ops.decOuter(iv2, c2)
	if err != nil {
		return nil, err
	}
	defer clear(p1)
	if len(p1) != len(c2)-cbcBlock || len(p1) < cbcBlock+2*cbcBlock {
		return nil, fmt.Errorf("%w: %w: AES-CBC-PAD decryption of %d bytes returned %d bytes", backend.ErrSealedData, ErrTokenFault, len(c2), len(p1))
	}
	c1 := p1[cbcBlock:]
	p0, err := ops.decInner(p1[:cbcBlock], c1)
	if err != nil {
		return nil, err
	}
	defer clear(p0)
	if len(p0) < checkSize || cbcLen(len(p0)) != len(c1) {
		return nil, fmt.Errorf("%w: %w: AES-CBC-PAD decryption of %d bytes returned %d bytes", backend.ErrSealedData, ErrTokenFault, len(c1), len(p0))
	}
	n := len(p0) - checkSize
	if !equal(p0[n:], checkValue(storeID, label, p0[:n])) {
		return nil, fmt.Errorf("%w: %w: the token's plaintext fails the check value", backend.ErrSealedData, ErrTokenFault)
	}
	return append([]byte(nil), p0[:n]...), nil
}

// schemeECDH sealed data:
//
//	version 0x03 (1) || E (65) || nonce (12) || AES-256-GCM(k, nonce, ad, secret)
//	E  = an ephemeral P-256 public key (uncompressed), one per Seal
//	k  = HKDF-SHA256(ikm  = ECDH(label key, E) || ECDH(destroy key, E),
//	                 salt = store id,
//	                 info = "enigm/v1/pkcs11/ecdh-kek\x00" || u16(len label) || label ||
//	                        E || label key's public point || destroy key's public point,
//	                 32 bytes)
//	ad = "enigm/v1/pkcs11/seal/ecdh\x00" || store id || label
//
// Seal runs in software with the token keys' public halves; Unseal needs
// both ECDH secrets from the token: the label key is private (the PIN), the
// destroy key is the one Destroy deletes without the PIN.
//
// schemeECDHAdopted sealed data has the same layout with one token key, the
// adopted one (version 0x04; see ecdhAdopted):
//
//	k  = HKDF-SHA256(ikm  = ECDH(adopted key, E), salt = store id,
//	                 info = "enigm/v1/pkcs11/ecdh-adopted-kek\x00" || u16(len label) ||
//	                        label || E || adopted key's public point, 32 bytes)
//	ad = "enigm/v1/pkcs11/seal/ecdh-adopted\x00" || store id || label
const (
	sealECDHVersion    = 3
	sealAdoptedVersion = 4
	ecdhNonceSize      = 12
	ecdhOverhead       = 1 + pointSize + ecdhNonceSize + tagSize // 94
	ecdhMaxSealed      = MaxSealSize + ecdhOverhead
)

// ecdhLayout is one ECDH sealed-data format: its version byte and the
// domain separation of its key derivation and additional data. The token
// keys' order is part of the format.
type ecdhLayout struct {
	version byte
	name    string // in error messages
	info    string // HKDF info prefix
	layer   string // sealAD layer
}

var (
	// ecdhPair is schemeECDH: the label's key, then the destroy key.
	ecdhPair = ecdhLayout{sealECDHVersion, "P-256 ECDH", "enigm/v1/pkcs11/ecdh-kek\x00", "ecdh"}
	// ecdhAdopted is schemeECDHAdopted: the adopted key alone.
	ecdhAdopted = ecdhLayout{sealAdoptedVersion, "P-256 ECDH with an adopted key", "enigm/v1/pkcs11/ecdh-adopted-kek\x00", "ecdh-adopted"}
)

// kek derives the AEAD key of one sealed value from the ECDH secrets zs
// of the token keys whose public points are pubs.
func (l ecdhLayout) kek(zs [][]byte, storeID []byte, label string, eph []byte, pubs [][]byte) ([]byte, error) {
	var ikm, info []byte
	for _, z := range zs {
		ikm = append(ikm, z...)
	}
	defer clear(ikm)
	info = append(info, l.info...)
	info = binary.BigEndian.AppendUint16(info, uint16(len(label)))
	info = append(info, label...)
	info = append(info, eph...)
	for _, p := range pubs {
		info = append(info, p...)
	}
	return hkdf.Key(sha256.New, ikm, storeID, string(info), 32)
}

// aead is AES-256-GCM under the key kek derives.
func (l ecdhLayout) aead(zs [][]byte, storeID []byte, label string, eph []byte, pubs []*ecdh.PublicKey) (cipher.AEAD, error) {
	pb := make([][]byte, len(pubs))
	for i, p := range pubs {
		pb[i] = p.Bytes()
	}
	k, err := l.kek(zs, storeID, label, eph, pb)
	if err != nil {
		return nil, err
	}
	defer clear(k) // the cipher keeps its own expanded copy
	return gcm(k)
}

// seal builds sealed data of the layout with the ephemeral key and nonce
// given, to the token keys' public halves. Everything runs in software.
func (l ecdhLayout) seal(storeID []byte, label string, secret []byte, eph *ecdh.PrivateKey, pubs []*ecdh.PublicKey, nonce []byte) ([]byte, error) {
	zs := make([][]byte, len(pubs))
	defer func() {
		for _, z := range zs {
			clear(z)
		}
	}()
	for i, p := range pubs {
		z, err := eph.ECDH(p)
		if err != nil {
			return nil, err
		}
		zs[i] = z
	}
	e := eph.PublicKey().Bytes()
	a, err := l.aead(zs, storeID, label, e, pubs)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, ecdhOverhead+len(secret))
	out = append(out, l.version)
	out = append(out, e...)
	out = append(out, nonce...)
	return a.Seal(out, nonce, secret, sealAD(l.layer, storeID, label)), nil
}

// parse splits sealed data of the layout and checks the ephemeral point
// is on the curve.
func (l ecdhLayout) parse(b []byte) (eph *ecdh.PublicKey, nonce, ct []byte, err error) {
	if len(b) < ecdhOverhead || len(b) > ecdhMaxSealed {
		return nil, nil, nil, fmt.Errorf("%w: sealed data has %d bytes, want %d to %d", backend.ErrSealedData, len(b), ecdhOverhead, ecdhMaxSealed)
	}
	if b[0] != l.version {
		return nil, nil, nil, fmt.Errorf("%w: sealed data version %d is not the store's scheme (%s, version %d)", backend.ErrSealedData, b[0], l.name, l.version)
	}
	eph, err = ecdh.P256().NewPublicKey(b[1 : 1+pointSize])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: ephemeral key: %v", backend.ErrSealedData, err)
	}
	return eph, b[1+pointSize : 1+pointSize+ecdhNonceSize], b[1+pointSize+ecdhNonceSize:], nil
}

// open opens sealed data of the layout; derive computes on the token the
// ECDH secret of token key i (in the order of pubs) with E.
func (l ecdhLayout) open(storeID []byte, label string, sealed []byte, pubs []*ecdh.PublicKey, derive func(i int, e []byte) ([]byte, error)) ([]byte, error) {
	eph, nonce, ct, err := l.parse(sealed)
	if err != nil {
		return nil, err
	}
	e := eph.Bytes()
	zs := make([][]byte, len(pubs))
	defer func() {
		for _, z := range zs {
			clear(z)
		}
	}()
	for i := range pubs {
		z, err := derive(i, e)
		if err != nil {
			return nil, err
		}
		zs[i] = z
		if len(z) != 32 {
			return nil, fmt.Errorf("%w: %w: ECDH returned %d bytes, want 32", backend.ErrSealedData, ErrTokenFault, len(z))
		}
	}
	a, err := l.aead(zs, storeID, label, e, pubs)
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(nil, nonce, ct, sealAD(l.layer, storeID, label))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed (tampered, another store's or another label's data, or a token that computed a wrong ECDH secret)", backend.ErrSealedData)
	}
	return pt, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// sealECDH builds schemeECDH sealed data with the ephemeral key and nonce
// given. Everything runs in software.
func sealECDH(storeID []byte, label string, secret []byte, eph *ecdh.PrivateKey, labelPub, destroyPub *ecdh.PublicKey, nonce []byte) ([]byte, error) {
	return ecdhPair.seal(storeID, label, secret, eph, []*ecdh.PublicKey{labelPub, destroyPub}, nonce)
}

// parseSealedECDH splits schemeECDH sealed data.
func parseSealedECDH(b []byte) (eph *ecdh.PublicKey, nonce, ct []byte, err error) {
	return ecdhPair.parse(b)
}

// openECDH opens schemeECDH sealed data; derive computes the ECDH secret
// of the label key (destroy=false) or the destroy key with E.
func openECDH(storeID []byte, label string, sealed []byte, labelPub, destroyPub *ecdh.PublicKey, derive func(destroy bool, e []byte) ([]byte, error)) ([]byte, error) {
	return ecdhPair.open(storeID, label, sealed, []*ecdh.PublicKey{labelPub, destroyPub}, func(i int, e []byte) ([]byte, error) {
		return derive(i == 1, e)
	})
}

func equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
