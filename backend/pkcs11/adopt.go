//go:build cgo

package pkcs11

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/wire"
)

// A store on an adopted key (schemeECDHAdopted): the user made a P-256 key
// on the token with the vendor's tool (on a PIV token generating a key
// needs the management key, which the keystore does not have), and the
// backend adopts it by its CKA_ID. Sealing is schemeECDH's layout with
// that one key (ecdhAdopted). The backend creates no token object and
// destroys none: the key is the user's.

// adoptedNeed are the mechanisms a store on an adopted key uses.
var adoptedNeed = []mechanism{mECDH}

// maxListed bounds the EC keys an error lists.
const maxListed = 32

// adoptedCaps is what a store on an adopted key has: the PIN and
// non-exportability are the token's; Destroy removes nothing from the
// token; no resident key the interface names (no binding keys: the
// backend generates nothing).
func adoptedCaps() backend.Capabilities {
	c := capabilities()
	c.Resident = nil
	c.HardwareGates = withoutGate(c.HardwareGates, backend.GateDestroy)
	return c
}

var _ backend.StoreCapabilities = (*Backend)(nil)

// CapabilitiesOf reports the capabilities of the store whose state is
// given: those of [Backend.Capabilities], except for a store on an adopted
// key (no destroy gate, no resident keys) whatever the options say. A
// state that does not parse gets Capabilities.
func (b *Backend) CapabilitiesOf(stateBytes []byte) backend.Capabilities {
	if st, err := parseState(stateBytes); err == nil && st.Scheme == schemeECDHAdopted {
		return adoptedCaps()
	}
	return b.Capabilities()
}

// provisionAdopted is Provision with Options.AdoptKeyID: it checks the key
// and records its id and public point; nothing is created on the token.
func (b *Backend) provisionAdopted(t slotInfo, have map[uint]bool, secret []byte) ([]byte, error) {
	id := b.opts.AdoptKeyID
	if len(id) > maxAdoptIDSize {
		return nil, fmt.Errorf("%w: the key id has %d bytes; at most %d (PIV tokens use one byte, e.g. 03 for slot 9d)", ErrAdoptedKey, len(id), maxAdoptIDSize)
	}
	if b.opts.Scheme != "" && b.opts.Scheme != SchemeP256ECDH {
		return nil, fmt.Errorf("pkcs11: an adopted key is used with scheme %s, not %s", SchemeP256ECDH, b.opts.Scheme)
	}
	if m := missing(have, adoptedNeed); len(m) != 0 {
		return nil, fmt.Errorf("%w: token %q cannot use an adopted P-256 key: it lacks %s", ErrMechanisms, t.label, strings.Join(m, ", "))
	}
	st := &state{Version: stateVersion, Scheme: schemeECDHAdopted, StoreID: make([]byte, storeIDSize),
		Serial: t.serial, Label: t.label, KeyID: bytes.Clone(id)}
	rand.Read(st.StoreID)
	c, err := b.dialLogin(t.slot, st, secret)
	if err != nil {
		return nil, err
	}
	defer c.close()
	h, pub, err := c.adoptedKey(id)
	if err != nil {
		return nil, err
	}
	// Proven once here: the token computes ECDH with the point recorded.
	ep, err := c.checkAgreement(h, pub)
	switch {
	case errors.Is(err, ErrTokenFault):
		return nil, fmt.Errorf("%w: the key with CKA_ID %x on token %q does not compute ECDH with its public key (a public key or certificate of another key under its id?): %w", ErrAdoptedKey, id, t.label, err)
	case err != nil:
		why := "a key with a touch policy waits for a touch"
		if d, derr := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_DERIVE, nil)}); derr == nil &&
			len(d) == 1 && bytes.Equal(d[0].Value, []byte{0}) {
			why = "the key has CKA_DERIVE=false: the token may not allow key agreement with it; " + why
		}
		return nil, fmt.Errorf("%w: ECDH with the key with CKA_ID %x on token %q failed (%s): %w", ErrAdoptedKey, id, t.label, why, err)
	}
	st.Public = ep.Bytes()
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("pkcs11: token serial %q or label %q cannot be recorded: %w", t.serial, t.label, err)
	}
	return wire.Marshal(st)
}

// openAdopted is Open of a store on an adopted key: it logs in, finds the
// key, and refuses one whose public point is not the one recorded (the
// slot was regenerated); nothing is changed on the token or in the store.
func (b *Backend) openAdopted(c *conn, secret []byte) (backend.Session, error) {
	st := c.st
	if err := c.login(secret); err != nil {
		return nil, err
	}
	ms, err := b.tok.GetMechanismList(c.slot)
	if err != nil {
		return nil, tokenErr("C_GetMechanismList", err)
	}
	if m := missing(mechSet(ms), adoptedNeed); len(m) != 0 {
		return nil, fmt.Errorf("%w: token %q no longer offers %s, which a store on an adopted key needs", ErrMechanisms, st.Label, strings.Join(m, ", "))
	}
	h, pub, err := c.adoptedKey(st.KeyID)
	if err != nil {
		return nil, fmt.Errorf("the key this store adopted: %w", err)
	}
	if !bytes.Equal(encodePoint(pub), st.Public) {
		return nil, fmt.Errorf("%w: the key with CKA_ID %x on token %q is not the one this store adopted (its public key differs: the slot was regenerated or another key put under that id). Nothing was changed; the store opens only with the original key, or re-initialize the keystore on the new one", ErrAdoptedKey, st.KeyID, st.Label)
	}
	ep, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenFault, err)
	}
	b.capsMu.Lock()
	b.caps = adoptedCaps()
	b.capsMu.Unlock()
	return sealSession{&session{c: c, adopted: h, adoptedPub: ep, keks: map[string]p11.ObjectHandle{},
		macs: map[string]p11.ObjectHandle{}, pubs: map[string]*ecdh.PublicKey{}}}, nil
}

// adoptedKey finds the one private key with CKA_ID id, checks that it is
// an EC P-256 key that cannot leave the token and was generated on it,
// and returns it with its public point (from the key itself, its public
// key object or its certificate, which must agree).
func (c *conn) adoptedKey(id []byte) (p11.ObjectHandle, *ecdsa.PublicKey, error) {
	hs, err := c.find([]*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_ID, id),
	})
	if err != nil {
		return 0, nil, err
	}
	switch len(hs) {
	case 0:
		return 0, nil, fmt.Errorf("%w: token %q has no private key with CKA_ID %x; %s", ErrAdoptedKey, c.st.Label, id, c.listECKeys())
	case 1:
	default:
		return 0, nil, fmt.Errorf("%w: %d private keys on token %q have CKA_ID %x; the backend does not guess which one to use: remove the others or use another id", ErrAdoptedKey, len(hs), c.st.Label, id)
	}
	h := hs[0]
	name := fmt.Sprintf("the private key with CKA_ID %x on token %q", id, c.st.Label)
	kt, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return 0, nil, tokenErr("C_GetAttributeValue (CKA_KEY_TYPE)", err)
	}
	if len(kt) != 1 {
		return 0, nil, fmt.Errorf("%w: no CKA_KEY_TYPE", ErrTokenFault)
	}
	if t, ok := ulong(kt[0].Value); !ok || t != p11.CKK_EC {
		return 0, nil, fmt.Errorf("%w: %s is %s, not EC P-256: generate a P-256 key under that id with the token vendor's tool", ErrAdoptedKey, name, keyTypeName(kt[0].Value))
	}
	want := []struct {
		attr uint
		name string
		val  bool
		why  string
	}{
		{p11.CKA_EC_PARAMS, "", false, ""}, // checked below
		{p11.CKA_TOKEN, "CKA_TOKEN", true, "it is a session object, gone when the session closes"},
		{p11.CKA_PRIVATE, "CKA_PRIVATE", true, "it is usable without the PIN"},
		{p11.CKA_SENSITIVE, "CKA_SENSITIVE", true, "its value can be read from the token"},
		{p11.CKA_EXTRACTABLE, "CKA_EXTRACTABLE", false, "it can be exported from the token (wrapped out)"},
		{p11.CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", true, "its value was readable once"},
		{p11.CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", true, "it was exportable once"},
		{p11.CKA_LOCAL, "CKA_LOCAL", true, "it was not generated on the token (imported, so a copy may exist elsewhere)"},
	}
	q := make([]*p11.Attribute, len(want))
	for i, w := range want {
		q[i] = p11.NewAttribute(w.attr, nil)
	}
	got, err := c.b.tok.GetAttributeValue(c.sh, h, q)
	if err != nil {
		return 0, nil, tokenErr("C_GetAttributeValue", err)
	}
	if len(got) != len(q) {
		return 0, nil, fmt.Errorf("%w: C_GetAttributeValue returned %d attributes, want %d", ErrTokenFault, len(got), len(q))
	}
	if !bytes.Equal(got[0].Value, ecP256Params) {
		return 0, nil, fmt.Errorf("%w: %s is an EC key on another curve (CKA_EC_PARAMS %x), not P-256", ErrAdoptedKey, name, got[0].Value)
	}
	for i, w := range want[1:] {
		v := got[i+1].Value
		if len(v) != 1 || (v[0] != 0) != w.val {
			return 0, nil, fmt.Errorf("%w: %s has %s=%x: %s. Generate a new key on the token that cannot leave it and adopt that one", ErrAdoptedKey, name, w.name, v, w.why)
		}
	}
	// A key that needs the PIN before every use (CKA_ALWAYS_AUTHENTICATE:
	// PIV slot 9c, or PIN policy "always") would need a context-specific
	// login before each ECDH, which the backend does not do. A token that
	// does not know the attribute has no such keys.
	if aa, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_ALWAYS_AUTHENTICATE, nil)}); err == nil &&
		len(aa) == 1 && len(aa[0].Value) == 1 && aa[0].Value[0] != 0 {
		return 0, nil, fmt.Errorf("%w: %s needs the PIN again before every use (CKA_ALWAYS_AUTHENTICATE: PIV slot 9c, or PIN policy \"always\"), which the backend does not support; use a key with PIN policy \"once\" (slot 9d)", ErrAdoptedKey, name)
	}
	// CKA_DERIVE is not required: ykcs11 reports it false for every PIV
	// key and still derives. The derivation itself is what counts
	// (checkAgreement at Provision; the AEAD at every Unseal).
	pub, err := c.adoptedPoint(h, id)
	if err != nil {
		return 0, nil, err
	}
	return h, pub, nil
}

// adoptedPoint reads the public point of the key with CKA_ID id: from the
// private key (ykcs11 has CKA_EC_POINT there), from public key objects
// and from X.509 certificates with the id. All that are present must
// agree; at least one must be.
func (c *conn) adoptedPoint(priv p11.ObjectHandle, id []byte) (*ecdsa.PublicKey, error) {
	var found []*ecdsa.PublicKey
	var from []string
	if got, err := c.b.tok.GetAttributeValue(c.sh, priv, []*p11.Attribute{p11.NewAttribute(p11.CKA_EC_POINT, nil)}); err == nil &&
		len(got) == 1 && len(got[0].Value) != 0 {
		p, err := decodePoint(got[0].Value)
		if err != nil {
			return nil, err
		}
		found, from = append(found, p), append(from, "the private key")
	}
	pubs, err := c.find([]*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY), p11.NewAttribute(p11.CKA_ID, id)})
	if err != nil {
		return nil, err
	}
	for _, h := range pubs {
		got, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_EC_POINT, nil)})
		if err != nil {
			return nil, fmt.Errorf("%w: the public key with CKA_ID %x is not an EC key: %v", ErrAdoptedKey, id, err)
		}
		if len(got) != 1 {
			return nil, fmt.Errorf("%w: no CKA_EC_POINT", ErrTokenFault)
		}
		p, err := decodePoint(got[0].Value)
		if err != nil {
			return nil, err
		}
		found, from = append(found, p), append(from, "a public key object")
	}
	certs, err := c.find([]*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, p11.CKO_CERTIFICATE), p11.NewAttribute(p11.CKA_ID, id)})
	if err != nil {
		return nil, err
	}
	for _, h := range certs {
		got, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
		if err != nil || len(got) != 1 {
			return nil, fmt.Errorf("%w: the certificate with CKA_ID %x cannot be read: %v", ErrAdoptedKey, id, err)
		}
		cert, err := x509.ParseCertificate(got[0].Value)
		if err != nil {
			return nil, fmt.Errorf("%w: the certificate with CKA_ID %x does not parse: %v", ErrAdoptedKey, id, err)
		}
		p, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: the certificate with CKA_ID %x is not for a P-256 key", ErrAdoptedKey, id)
		}
		found, from = append(found, p), append(from, "a certificate")
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: token %q has neither a public key nor a certificate with CKA_ID %x, so the key's public point is unknown (on a PIV token, store a certificate for the key in its slot)", ErrAdoptedKey, c.st.Label, id)
	}
	for i, p := range found[1:] {
		if !p.Equal(found[0]) {
			return nil, fmt.Errorf("%w: %s and %s with CKA_ID %x name different public keys; the token holds objects of two keys under one id", ErrAdoptedKey, from[0], from[i+1], id)
		}
	}
	return found[0], nil
}

// listECKeys says which EC private keys the token has (ids and labels,
// nothing secret), for the error of a key id that names none.
func (c *conn) listECKeys() string {
	hs, err := c.find([]*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
	})
	if err != nil {
		return "its EC private keys could not be listed: " + err.Error()
	}
	if len(hs) == 0 {
		return "it has no EC private key at all: generate a P-256 key on it first, with the token vendor's tool"
	}
	var keys []string
	for i, h := range hs {
		if i == maxListed {
			keys = append(keys, fmt.Sprintf("and %d more", len(hs)-maxListed))
			break
		}
		got, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, nil), p11.NewAttribute(p11.CKA_LABEL, nil)})
		if err != nil || len(got) != 2 {
			keys = append(keys, "(unreadable)")
			continue
		}
		keys = append(keys, fmt.Sprintf("id %s label %s", hex.EncodeToString(got[0].Value), strconv.Quote(string(got[1].Value))))
	}
	return "its EC private keys: " + strings.Join(keys, ", ")
}

// keyTypeName names a CKA_KEY_TYPE value in an error.
func keyTypeName(v []byte) string {
	t, ok := ulong(v)
	switch {
	case !ok:
		return "a key of unknown type"
	case t == p11.CKK_RSA:
		return "an RSA key"
	}
	return fmt.Sprintf("a key of type %#x", t)
}

// sealAdopted and openAdopted are Seal and Unseal of a store on an
// adopted key; s.mu is held.
func (s *session) sealAdopted(label string, secret []byte) ([]byte, error) {
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, ecdhNonceSize)
	rand.Read(nonce)
	return ecdhAdopted.seal(s.c.st.StoreID, label, secret, eph, []*ecdh.PublicKey{s.adoptedPub}, nonce)
}

func (s *session) unsealAdopted(label string, sealed []byte) ([]byte, error) {
	c := s.c
	pt, err := ecdhAdopted.open(c.st.StoreID, label, sealed, []*ecdh.PublicKey{s.adoptedPub}, func(_ int, e []byte) ([]byte, error) {
		return c.ecdh(s.adopted, e)
	})
	if err != nil && errors.Is(err, backend.ErrSealedData) && !errors.Is(err, ErrTokenFault) {
		return nil, fmt.Errorf("%w (or the private key with CKA_ID %x was replaced on the token)", err, c.st.KeyID)
	}
	return pt, err
}
