//go:build cgo

package pkcs11

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
)

// conn is one PKCS#11 session on the token of a store. It is not safe for
// concurrent use; session serializes its callers.
type conn struct {
	b      *Backend
	st     *state
	key    string // tokenKey of the token
	slot   uint
	sh     p11.SessionHandle
	logged bool // holds a login reference
}

// slotInfo describes an initialized token in a slot.
type slotInfo struct {
	slot          uint
	serial, label string
	flags         uint
}

func trim(s string) string { return strings.TrimRight(s, " \x00") }

// tokensPresent lists the initialized tokens the module offers.
func (b *Backend) tokensPresent() ([]slotInfo, error) {
	slots, err := b.tok.GetSlotList(true)
	if err != nil {
		return nil, tokenErr("C_GetSlotList", err)
	}
	var out []slotInfo
	for _, s := range slots {
		ti, err := b.tok.GetTokenInfo(s)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue // removed meanwhile, or blank
		}
		out = append(out, slotInfo{slot: s, serial: trim(ti.SerialNumber), label: trim(ti.Label), flags: ti.Flags})
	}
	return out, nil
}

// dial opens a read/write session on the token st names: in the slot it
// was last found in if it is still there, else after a scan of all slots.
func (b *Backend) dial(st *state) (*conn, error) {
	key := tokenKey(st.Serial, st.Label)
	b.slotMu.Lock()
	slot, cached := b.slots[key]
	b.slotMu.Unlock()
	if cached {
		ti, err := b.tok.GetTokenInfo(slot)
		if err == nil && ti.Flags&p11.CKF_TOKEN_INITIALIZED != 0 &&
			trim(ti.SerialNumber) == st.Serial && trim(ti.Label) == st.Label {
			return b.dialSlot(slot, st)
		}
	}
	ts, err := b.tokensPresent()
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.serial == st.Serial && t.label == st.Label {
			b.slotMu.Lock()
			b.slots[key] = t.slot
			b.slotMu.Unlock()
			return b.dialSlot(t.slot, st)
		}
	}
	return nil, fmt.Errorf("%w: token %q (serial %s) is not present in %s; insert it", backend.ErrUnavailable, st.Label, st.Serial, b.mod.path)
}

func (b *Backend) dialSlot(slot uint, st *state) (*conn, error) {
	sh, err := b.tok.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return nil, tokenErr("C_OpenSession", err)
	}
	return &conn{b: b, st: st, key: tokenKey(st.Serial, st.Label), slot: slot, sh: sh}, nil
}

// login logs in with the user PIN. Before any attempt (which a token with
// a retry counter would count) it checks the PIN against the length range
// the token reports and refuses a token whose PIN is locked; after a wrong
// PIN it says how many tries the token reports left.
func (c *conn) login(pin []byte) error {
	ti, err := c.b.tok.GetTokenInfo(c.slot)
	if err != nil {
		return tokenErr("C_GetTokenInfo", err)
	}
	if err := pinFits(ti, pin); err != nil {
		return err
	}
	if ti.Flags&p11.CKF_USER_PIN_LOCKED != 0 {
		return fmt.Errorf("%w: token %q reports its user PIN locked after too many wrong PINs; no login was attempted. The token's security officer must set a new user PIN (C_InitPIN after an SO login); the store's keys on the token are kept", backend.ErrLockedOut, trim(ti.Label))
	}
	err = c.b.mod.acquireLogin(c.b.tok, c.sh, c.key, pin)
	if err != nil {
		if isCKR(err, p11.CKR_PIN_INCORRECT) {
			return fmt.Errorf("%w%s", err, triesLeft(c.b.tok, c.slot))
		}
		return err
	}
	c.logged = true
	return nil
}

// pinFits checks the PIN length against the range the token reports
// (ulMinPinLen, ulMaxPinLen; bytes).
func pinFits(ti p11.TokenInfo, pin []byte) error {
	lo, hi := ti.MinPinLen, ti.MaxPinLen
	if lo >= 1<<31 { // CK_UNAVAILABLE_INFORMATION
		lo = 0
	}
	rng := fmt.Sprintf("%d to %d bytes", lo, hi)
	if hi == 0 || hi >= 1<<31 { // unset or CK_UNAVAILABLE_INFORMATION: no upper bound known
		hi, rng = 1<<31, fmt.Sprintf("at least %d bytes", lo)
	}
	if len(pin) < int(lo) || len(pin) > int(hi) {
		return fmt.Errorf("%w: token %q accepts PINs of %s and this one has %d; no login was attempted, so no try was used (the unlock secret is the token's PIN)", backend.ErrBadSecret, trim(ti.Label), rng, len(pin))
	}
	return nil
}

// triesLeft describes what the token reports after a wrong PIN.
func triesLeft(tok token, slot uint) string {
	ti, err := tok.GetTokenInfo(slot)
	switch {
	case err != nil:
		return ""
	case ti.Flags&p11.CKF_USER_PIN_LOCKED != 0:
		return "; the token has now locked the user PIN: its security officer must set a new one (the store's keys are kept)"
	case ti.Flags&p11.CKF_USER_PIN_FINAL_TRY != 0:
		return "; the token reports ONE try left before it locks the user PIN (then only its security officer can reset it)"
	case ti.Flags&p11.CKF_USER_PIN_COUNT_LOW != 0:
		return "; the token reports few tries left before it locks the user PIN"
	}
	return "; the token does not report how many tries are left (many tokens lock the PIN after 3 to 10 wrong tries)"
}

func (c *conn) close() {
	if c.logged {
		c.b.mod.releaseLogin(c.b.tok, c.sh, c.key)
		c.logged = false
	}
	c.b.tok.CloseSession(c.sh)
}

// maxFound bounds a search: a store has a handful of objects.
const maxFound = 1024

func (c *conn) find(tmpl []*p11.Attribute) ([]p11.ObjectHandle, error) {
	if err := c.b.tok.FindObjectsInit(c.sh, tmpl); err != nil {
		return nil, tokenErr("C_FindObjectsInit", err)
	}
	defer c.b.tok.FindObjectsFinal(c.sh)
	var out []p11.ObjectHandle
	for len(out) <= maxFound {
		hs, _, err := c.b.tok.FindObjects(c.sh, 64)
		if err != nil {
			return nil, tokenErr("C_FindObjects", err)
		}
		if len(hs) == 0 {
			return out, nil
		}
		out = append(out, hs...)
	}
	return nil, fmt.Errorf("%w: more than %d token objects match one store", backend.ErrState, maxFound)
}

var errNotFound = errors.New("pkcs11: object not found on the token")

// findStored is findOne for an object the store's state says exists: its
// absence is the state's fault (backend.ErrState, with missing saying
// what is gone), not an error of the caller.
func (c *conn) findStored(what string, tmpl []*p11.Attribute, missing string) (p11.ObjectHandle, error) {
	h, err := c.findOne(what, tmpl)
	if errors.Is(err, errNotFound) {
		return 0, fmt.Errorf("%w: %s", backend.ErrState, missing)
	}
	return h, err
}

// storedPublic finds (findStored) the public half, matching pubT, of the
// store's key pair whose private half is privH, and checks that the two
// belong together (checkPair).
func (c *conn) storedPublic(privH p11.ObjectHandle, what string, pubT []*p11.Attribute, missing string, private bool) (*ecdsa.PublicKey, error) {
	pubH, err := c.findStored(what, pubT, missing)
	if err != nil {
		return nil, err
	}
	return c.checkPair(privH, pubH, private)
}

// findOne finds exactly one object; several are refused, as only an
// attacker makes a second object with our label and id.
func (c *conn) findOne(what string, tmpl []*p11.Attribute) (p11.ObjectHandle, error) {
	hs, err := c.find(tmpl)
	if err != nil {
		return 0, err
	}
	switch len(hs) {
	case 0:
		return 0, fmt.Errorf("%s: %w", what, errNotFound)
	case 1:
		return hs[0], nil
	}
	return 0, fmt.Errorf("%w: %d token objects claim to be the %s of this store; the token was tampered with", backend.ErrState, len(hs), what)
}

// Templates. A template sets the attributes that matter for security
// (where the key lives, who can see it, that it never leaves the token,
// its size and the one usage it needs). The strict form also sets every
// other usage flag false; tokens that reject explicit false flags
// (tpm2-pkcs11 answers CKR_GENERAL_ERROR) get the minimal form. Either
// way the backend reads the attributes back and refuses a key that does
// not have them (checkKey).

var ecP256Params = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // OID 1.2.840.10045.3.1.7

// destroyKeyTemplate selects the store's destroy key: an AES key, or for
// schemeECDH the private half of an EC key pair, visible without login.
func (c *conn) destroyKeyTemplate() []*p11.Attribute {
	id := objectID(c.st.StoreID, roleDestroy, nil)
	if c.st.Scheme == schemeECDH {
		_, priv := c.ecPairTemplates(id, c.st.PINDestroy)
		return priv
	}
	return c.secretTemplate(p11.CKK_AES, id, c.st.PINDestroy)
}

// kekTemplate selects the wrapping key of a label: AES, or for schemeECDH
// the private half of an EC key pair.
func (c *conn) kekTemplate(label string) []*p11.Attribute {
	id := objectID(c.st.StoreID, roleKEK, []byte(label))
	if c.st.Scheme == schemeECDH {
		_, priv := c.ecPairTemplates(id, true)
		return priv
	}
	return c.secretTemplate(p11.CKK_AES, id, true)
}

// macTemplate selects the HMAC key of a label (schemeCBCHMAC).
func (c *conn) macTemplate(label string) []*p11.Attribute {
	return c.secretTemplate(p11.CKK_GENERIC_SECRET, objectID(c.st.StoreID, roleMAC, []byte(label)), true)
}

// secretTemplate selects, and with secretGenAttrs creates, a secret key.
func (c *conn) secretTemplate(keyType uint, id []byte, private bool) []*p11.Attribute {
	return []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, keyType),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, private),
		p11.NewAttribute(p11.CKA_LABEL, objectLabel(c.st.StoreID)),
		p11.NewAttribute(p11.CKA_ID, id),
	}
}

func boolAttrs(v bool, attrs ...uint) []*p11.Attribute {
	out := make([]*p11.Attribute, len(attrs))
	for i, a := range attrs {
		out[i] = p11.NewAttribute(a, v)
	}
	return out
}

// secretGenAttrs are the creation attributes of a 256-bit secret key with
// the usage flags use; strict adds every other usage flag as false.
func secretGenAttrs(use []uint, strict bool) []*p11.Attribute {
	a := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
	}
	a = append(a, boolAttrs(true, use...)...)
	if strict {
		a = append(a, boolAttrs(false, others(use, p11.CKA_ENCRYPT, p11.CKA_DECRYPT, p11.CKA_WRAP, p11.CKA_UNWRAP,
			p11.CKA_SIGN, p11.CKA_VERIFY, p11.CKA_DERIVE)...)...)
	}
	return a
}

// others returns the flags of all that are not in use.
func others(use []uint, all ...uint) []uint {
	var out []uint
	for _, a := range all {
		found := false
		for _, u := range use {
			found = found || u == a
		}
		if !found {
			out = append(out, a)
		}
	}
	return out
}

// ecPairTemplates select a store's EC key pair by id; private says
// whether its halves need the login (binding and wrapping keys) or not
// (the destroy key of schemeECDH).
func (c *conn) ecPairTemplates(id []byte, private bool) (pub, priv []*p11.Attribute) {
	label := objectLabel(c.st.StoreID)
	pub = []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, private),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_ID, id),
	}
	priv = []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, private),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_ID, id),
	}
	return pub, priv
}

func (c *conn) ecTemplates(keyID []byte) (pub, priv []*p11.Attribute) {
	// The public half is private too: then the destroy key is the only
	// object of a store that anyone without the PIN can see or delete.
	return c.ecPairTemplates(objectID(c.st.StoreID, roleBinding, keyID), true)
}

// ecGenAttrs are the creation attributes of a P-256 pair whose private
// half does use (CKA_SIGN for binding keys, CKA_DERIVE for ECDH keys).
func ecGenAttrs(use uint, strict bool) (pub, priv []*p11.Attribute) {
	pub = []*p11.Attribute{
		p11.NewAttribute(p11.CKA_EC_PARAMS, ecP256Params),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
	}
	if use == p11.CKA_SIGN {
		pub = append(pub, p11.NewAttribute(p11.CKA_VERIFY, true))
	}
	priv = []*p11.Attribute{
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
		p11.NewAttribute(use, true),
	}
	if strict {
		pub = append(pub, boolAttrs(false, others([]uint{p11.CKA_VERIFY}, p11.CKA_ENCRYPT, p11.CKA_WRAP, p11.CKA_DERIVE)...)...)
		if use != p11.CKA_SIGN {
			pub = append(pub, p11.NewAttribute(p11.CKA_VERIFY, false))
		}
		priv = append(priv, boolAttrs(false, others([]uint{use}, p11.CKA_SIGN, p11.CKA_SIGN_RECOVER, p11.CKA_DECRYPT,
			p11.CKA_UNWRAP, p11.CKA_DERIVE)...)...)
	}
	return pub, priv
}

// templateRejected reports a token refusing a template as such (rather
// than a missing token or login): then the minimal template is tried.
func templateRejected(err error) bool {
	for _, code := range []uint{p11.CKR_ATTRIBUTE_TYPE_INVALID, p11.CKR_ATTRIBUTE_VALUE_INVALID,
		p11.CKR_TEMPLATE_INCONSISTENT, p11.CKR_ATTRIBUTE_READ_ONLY, p11.CKR_GENERAL_ERROR} {
		if isCKR(err, code) {
			return true
		}
	}
	return false
}

// generateSecret creates a 256-bit secret key on the token with the given
// usage and checks what the token made of the template.
func (c *conn) generateSecret(tmpl []*p11.Attribute, keyType uint, private bool, use ...uint) (p11.ObjectHandle, error) {
	gen, name := uint(p11.CKM_AES_KEY_GEN), "AES-256"
	if keyType == p11.CKK_GENERIC_SECRET {
		gen, name = p11.CKM_GENERIC_SECRET_KEY_GEN, "256-bit generic secret"
	}
	mech := []*p11.Mechanism{p11.NewMechanism(gen, nil)}
	h, err := c.b.tok.GenerateKey(c.sh, mech, append(append([]*p11.Attribute(nil), tmpl...), secretGenAttrs(use, true)...))
	if err != nil && templateRejected(err) {
		h, err = c.b.tok.GenerateKey(c.sh, mech, append(append([]*p11.Attribute(nil), tmpl...), secretGenAttrs(use, false)...))
	}
	if err != nil {
		return 0, tokenErr("C_GenerateKey ("+name+")", err)
	}
	if err := c.checkKey(h, keyType, private); err != nil {
		c.b.tok.DestroyObject(c.sh, h)
		return 0, err
	}
	return h, nil
}

// generateAES creates an AES-256 encryption key.
func (c *conn) generateAES(tmpl []*p11.Attribute, private bool) (p11.ObjectHandle, error) {
	return c.generateSecret(tmpl, p11.CKK_AES, private, p11.CKA_ENCRYPT, p11.CKA_DECRYPT)
}

// generatePair creates a P-256 key pair on the token whose private half
// does use, checks the private half and returns the public key.
func (c *conn) generatePair(pubT, privT []*p11.Attribute, private bool, use uint) (privH, pubH p11.ObjectHandle, pub *ecdsa.PublicKey, err error) {
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_EC_KEY_PAIR_GEN, nil)}
	gen := func(strict bool) (p11.ObjectHandle, p11.ObjectHandle, error) {
		pubG, privG := ecGenAttrs(use, strict)
		pu, pr, err := c.b.tok.GenerateKeyPair(c.sh, mech,
			append(append([]*p11.Attribute(nil), pubT...), pubG...), append(append([]*p11.Attribute(nil), privT...), privG...))
		return pr, pu, err
	}
	privH, pubH, err = gen(true)
	if err != nil && templateRejected(err) {
		privH, pubH, err = gen(false)
	}
	if err != nil {
		return 0, 0, nil, tokenErr("C_GenerateKeyPair (P-256)", err)
	}
	if pub, err = c.checkPair(privH, pubH, private); err != nil {
		c.b.tok.DestroyObject(c.sh, privH)
		c.b.tok.DestroyObject(c.sh, pubH)
		return 0, 0, nil, err
	}
	return privH, pubH, pub, nil
}

// checkPair checks the private key's attributes and reads the public key.
func (c *conn) checkPair(priv, pub p11.ObjectHandle, private bool) (*ecdsa.PublicKey, error) {
	if err := c.checkKey(priv, p11.CKK_EC, private); err != nil {
		return nil, err
	}
	got, err := c.b.tok.GetAttributeValue(c.sh, pub, []*p11.Attribute{p11.NewAttribute(p11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, tokenErr("C_GetAttributeValue (CKA_EC_POINT)", err)
	}
	if len(got) != 1 {
		return nil, fmt.Errorf("%w: no CKA_EC_POINT", ErrTokenFault)
	}
	return decodePoint(got[0].Value)
}

// checkKey reads a key's attributes back and refuses a key that could
// leave the token, was not generated on it, or is not what we asked for.
func (c *conn) checkKey(h p11.ObjectHandle, keyType uint, private bool) error {
	want := []struct {
		attr uint
		name string
		val  bool
	}{
		{p11.CKA_TOKEN, "CKA_TOKEN", true},
		{p11.CKA_PRIVATE, "CKA_PRIVATE", private},
		{p11.CKA_SENSITIVE, "CKA_SENSITIVE", true},
		{p11.CKA_EXTRACTABLE, "CKA_EXTRACTABLE", false},
		{p11.CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE", true},
		{p11.CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", true},
		{p11.CKA_LOCAL, "CKA_LOCAL", true},
		{p11.CKA_MODIFIABLE, "CKA_MODIFIABLE", false},
	}
	q := make([]*p11.Attribute, 0, len(want)+2)
	for _, w := range want {
		q = append(q, p11.NewAttribute(w.attr, nil))
	}
	q = append(q, p11.NewAttribute(p11.CKA_KEY_TYPE, nil))
	if keyType == p11.CKK_EC {
		q = append(q, p11.NewAttribute(p11.CKA_EC_PARAMS, nil))
	} else {
		q = append(q, p11.NewAttribute(p11.CKA_VALUE_LEN, nil))
	}
	got, err := c.b.tok.GetAttributeValue(c.sh, h, q)
	if err != nil {
		return tokenErr("C_GetAttributeValue", err)
	}
	if len(got) != len(q) {
		return fmt.Errorf("%w: C_GetAttributeValue returned %d attributes, want %d", ErrTokenFault, len(got), len(q))
	}
	for i, w := range want {
		v := got[i].Value
		if len(v) != 1 || (v[0] != 0) != w.val {
			if w.attr == p11.CKA_PRIVATE && !private {
				return fmt.Errorf("%w: the token made the store's destroy key private (CKA_PRIVATE=true): it keeps no object usable without the PIN, so Destroy on revocation could not work", ErrNoPublicObjects)
			}
			return fmt.Errorf("%w: key has %s=%x, want %v", ErrTokenFault, w.name, v, w.val)
		}
	}
	if kt, ok := ulong(got[len(want)].Value); !ok || kt != uint64(keyType) {
		return fmt.Errorf("%w: key has the wrong CKA_KEY_TYPE", ErrTokenFault)
	}
	last := got[len(want)+1].Value
	if keyType == p11.CKK_EC {
		if string(last) != string(ecP256Params) {
			return fmt.Errorf("%w: EC key is not on P-256", ErrTokenFault)
		}
	} else if n, ok := ulong(last); !ok || n != 32 {
		return fmt.Errorf("%w: secret key is not 256 bits", ErrTokenFault)
	}
	return nil
}

// ulong decodes a CK_ULONG attribute value (native byte order).
func ulong(v []byte) (uint64, bool) {
	switch len(v) {
	case 8:
		return binary.NativeEndian.Uint64(v), true
	case 4:
		return uint64(binary.NativeEndian.Uint32(v)), true
	}
	return 0, false
}

// encrypt runs AES-256-GCM on the token. It returns the IV the token used
// (some tokens choose their own) and checks the ciphertext length.
func (c *conn) encrypt(key p11.ObjectHandle, ad, pt []byte) (iv, ct []byte, err error) {
	iv = make([]byte, ivSize)
	rand.Read(iv)
	params := p11.NewGCMParams(iv, ad, tagSize*8)
	defer params.Free()
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}
	if err := c.b.tok.EncryptInit(c.sh, mech, key); err != nil {
		return nil, nil, tokenErr("C_EncryptInit (AES-GCM)", err)
	}
	ct, err = c.b.tok.Encrypt(c.sh, pt)
	if err != nil {
		return nil, nil, tokenErr("C_Encrypt (AES-GCM)", err)
	}
	if len(ct) != len(pt)+tagSize {
		return nil, nil, fmt.Errorf("%w: AES-GCM encryption of %d bytes returned %d bytes, want %d", ErrTokenFault, len(pt), len(ct), len(pt)+tagSize)
	}
	used := params.IV()
	if len(used) != ivSize {
		return nil, nil, fmt.Errorf("%w: the token used a %d-byte GCM IV", ErrTokenFault, len(used))
	}
	return used, ct, nil
}

// decrypt runs AES-256-GCM decryption on the token and checks the
// plaintext length.
func (c *conn) decrypt(key p11.ObjectHandle, iv, ad, ct []byte) ([]byte, error) {
	params := p11.NewGCMParams(iv, ad, tagSize*8)
	defer params.Free()
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}
	if err := c.b.tok.DecryptInit(c.sh, mech, key); err != nil {
		return nil, decryptErr("C_DecryptInit (AES-GCM)", err)
	}
	pt, err := c.b.tok.Decrypt(c.sh, ct)
	if err != nil {
		return nil, decryptErr("C_Decrypt (AES-GCM)", err)
	}
	if len(pt) != len(ct)-tagSize {
		clear(pt)
		return nil, fmt.Errorf("%w: %w: AES-GCM decryption of %d bytes returned %d bytes, want %d", backend.ErrSealedData, ErrTokenFault, len(ct), len(pt), len(ct)-tagSize)
	}
	return pt, nil
}

// destroyAll destroys every object of the store the session can see,
// the destroy key first. It reports how many objects remain visible.
func (c *conn) destroyAll() (left int, err error) {
	d, err := c.find(c.destroyKeyTemplate())
	if err != nil {
		return 0, err
	}
	all, err := c.find([]*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, objectLabel(c.st.StoreID))})
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, h := range append(d, all...) {
		if err := c.b.tok.DestroyObject(c.sh, h); err != nil &&
			!isCKR(err, p11.CKR_OBJECT_HANDLE_INVALID) { // destroyed as d already
			errs = append(errs, tokenErr("C_DestroyObject", err))
		}
	}
	rest, err := c.find([]*p11.Attribute{p11.NewAttribute(p11.CKA_LABEL, objectLabel(c.st.StoreID))})
	if err != nil {
		return 0, err
	}
	return len(rest), errors.Join(errs...)
}

// cbcOps returns the token operations of schemeCBCHMAC for one label.
func (c *conn) cbcOps(destroy, kek, mac p11.ObjectHandle) cbcOps {
	return cbcOps{
		encInner: func(iv, pt []byte) ([]byte, error) { return c.cbc(true, destroy, iv, pt) },
		encOuter: func(iv, pt []byte) ([]byte, error) { return c.cbc(true, kek, iv, pt) },
		decInner: func(iv, ct []byte) ([]byte, error) { return c.cbc(false, destroy, iv, ct) },
		decOuter: func(iv, ct []byte) ([]byte, error) { return c.cbc(false, kek, iv, ct) },
		mac:      func(msg []byte) ([]byte, error) { return c.hmac(mac, msg) },
	}
}

// cbc runs AES-256-CBC-PAD on the token.
func (c *conn) cbc(enc bool, key p11.ObjectHandle, iv, in []byte) ([]byte, error) {
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_CBC_PAD, iv)}
	if enc {
		if err := c.b.tok.EncryptInit(c.sh, mech, key); err != nil {
			return nil, tokenErr("C_EncryptInit (AES-CBC-PAD)", err)
		}
		out, err := c.b.tok.Encrypt(c.sh, in)
		if err != nil {
			return nil, tokenErr("C_Encrypt (AES-CBC-PAD)", err)
		}
		return out, nil
	}
	if err := c.b.tok.DecryptInit(c.sh, mech, key); err != nil {
		return nil, decryptErr("C_DecryptInit (AES-CBC-PAD)", err)
	}
	out, err := c.b.tok.Decrypt(c.sh, in)
	if err != nil {
		return nil, decryptErr("C_Decrypt (AES-CBC-PAD)", err)
	}
	return out, nil
}

// hmac computes HMAC-SHA256 on the token.
func (c *conn) hmac(key p11.ObjectHandle, msg []byte) ([]byte, error) {
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_SHA256_HMAC, nil)}
	if err := c.b.tok.SignInit(c.sh, mech, key); err != nil {
		return nil, tokenErr("C_SignInit (HMAC-SHA256)", err)
	}
	tag, err := c.b.tok.Sign(c.sh, msg)
	if err != nil {
		return nil, tokenErr("C_Sign (HMAC-SHA256)", err)
	}
	return tag, nil
}

// ecdh computes on the token the ECDH secret of the private key and the
// uncompressed P-256 point peer. The token returns it as a session object
// (CKA_TOKEN=false, readable: PKCS#11 has no other way to hand out a
// shared secret), which is read and destroyed at once, one derivation at a
// time per module (module.deriveMu). The template is one ykcs11 accepts
// (it checks CKA_TOKEN, CKA_CLASS, CKA_KEY_TYPE and CKA_EXTRACTABLE and
// ignores the rest; TestECDHTemplateFitsYKCS11).
func (c *conn) ecdh(key p11.ObjectHandle, peer []byte) ([]byte, error) {
	params := p11.NewECDH1DeriveParams(p11.CKD_NULL, nil, peer)
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_ECDH1_DERIVE, params)}
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_GENERIC_SECRET),
		p11.NewAttribute(p11.CKA_TOKEN, false),
		p11.NewAttribute(p11.CKA_SENSITIVE, false),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
		p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
	}
	c.b.mod.deriveMu.Lock()
	defer c.b.mod.deriveMu.Unlock()
	h, err := c.b.tok.DeriveKey(c.sh, mech, key, tmpl)
	if err != nil {
		return nil, decryptErr("C_DeriveKey (ECDH P-256)", err)
	}
	defer c.b.tok.DestroyObject(c.sh, h)
	got, err := c.b.tok.GetAttributeValue(c.sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
	if err != nil {
		return nil, tokenErr("C_GetAttributeValue (ECDH secret)", err)
	}
	if len(got) != 1 || len(got[0].Value) != 32 {
		return nil, fmt.Errorf("%w: %w: the ECDH secret does not have 32 bytes", backend.ErrSealedData, ErrTokenFault)
	}
	return got[0].Value, nil
}

// generateAgreementPair creates a P-256 ECDH key pair (private half
// derive-only) and checks, with one derivation against a software key,
// that the token computes ECDH with the public key it reports.
func (c *conn) generateAgreementPair(pubT, privT []*p11.Attribute, private bool) (p11.ObjectHandle, *ecdh.PublicKey, error) {
	privH, pubH, pub, err := c.generatePair(pubT, privT, private, p11.CKA_DERIVE)
	if err != nil {
		return 0, nil, err
	}
	epub, err := c.checkAgreement(privH, pub)
	if err != nil {
		c.b.tok.DestroyObject(c.sh, privH)
		c.b.tok.DestroyObject(c.sh, pubH)
		return 0, nil, err
	}
	return privH, epub, nil
}

func (c *conn) checkAgreement(privH p11.ObjectHandle, pub *ecdsa.PublicKey) (*ecdh.PublicKey, error) {
	epub, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenFault, err)
	}
	probe, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	want, err := probe.ECDH(epub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenFault, err)
	}
	got, err := c.ecdh(privH, probe.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return nil, fmt.Errorf("%w: the token's ECDH result does not match its public key", ErrTokenFault)
	}
	return epub, nil
}

// agreementPub checks an existing ECDH key (found by its private half)
// and returns its public half.
func (c *conn) agreementPub(privH p11.ObjectHandle, pubT []*p11.Attribute, private bool) (*ecdh.PublicKey, error) {
	pub, err := c.storedPublic(privH, "ECDH public key", pubT, "the public half of an ECDH key of the store is missing from the token", private)
	if err != nil {
		return nil, err
	}
	epub, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenFault, err)
	}
	return epub, nil
}
