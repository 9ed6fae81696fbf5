//go:build cgo

package pkcs11

import (
	"crypto/rand"
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

func (c *conn) login(pin []byte) error {
	if err := c.b.mod.acquireLogin(c.b.tok, c.sh, c.key, pin); err != nil {
		return err
	}
	c.logged = true
	return nil
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

// Templates. Only the usage flags the backend uses are true.

var ecP256Params = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // OID 1.2.840.10045.3.1.7

func (c *conn) destroyKeyTemplate() []*p11.Attribute {
	return c.aesTemplate(objectID(c.st.StoreID, roleDestroy, nil), false)
}

func (c *conn) kekTemplate(label string) []*p11.Attribute {
	return c.aesTemplate(objectID(c.st.StoreID, roleKEK, []byte(label)), true)
}

// aesTemplate selects, and with aesGenAttrs creates, an AES key.
func (c *conn) aesTemplate(id []byte, private bool) []*p11.Attribute {
	return []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, private),
		p11.NewAttribute(p11.CKA_LABEL, objectLabel(c.st.StoreID)),
		p11.NewAttribute(p11.CKA_ID, id),
	}
}

func aesGenAttrs() []*p11.Attribute {
	return []*p11.Attribute{
		p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_DECRYPT, true),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_SIGN, false),
		p11.NewAttribute(p11.CKA_VERIFY, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
	}
}

func (c *conn) ecTemplates(keyID []byte) (pub, priv []*p11.Attribute) {
	id := objectID(c.st.StoreID, roleBinding, keyID)
	label := objectLabel(c.st.StoreID)
	// The public half is private too: then the destroy key is the only
	// object of a store that anyone without the PIN can see or delete.
	pub = []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PUBLIC_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_ID, id),
	}
	priv = []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_EC),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_LABEL, label),
		p11.NewAttribute(p11.CKA_ID, id),
	}
	return pub, priv
}

func ecGenAttrs() (pub, priv []*p11.Attribute) {
	pub = []*p11.Attribute{
		p11.NewAttribute(p11.CKA_EC_PARAMS, ecP256Params),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
		p11.NewAttribute(p11.CKA_VERIFY, true),
		p11.NewAttribute(p11.CKA_ENCRYPT, false),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
	}
	priv = []*p11.Attribute{
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
		p11.NewAttribute(p11.CKA_SIGN, true),
		p11.NewAttribute(p11.CKA_SIGN_RECOVER, false),
		p11.NewAttribute(p11.CKA_DECRYPT, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
	}
	return pub, priv
}

// generateAES creates an AES-256 key on the token and checks what the
// token made of the template.
func (c *conn) generateAES(tmpl []*p11.Attribute, private bool) (p11.ObjectHandle, error) {
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}
	h, err := c.b.tok.GenerateKey(c.sh, mech, append(tmpl, aesGenAttrs()...))
	if err != nil {
		return 0, tokenErr("C_GenerateKey (AES-256)", err)
	}
	if err := c.checkKey(h, p11.CKK_AES, private); err != nil {
		c.b.tok.DestroyObject(c.sh, h)
		return 0, err
	}
	return h, nil
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
	if keyType == p11.CKK_AES {
		q = append(q, p11.NewAttribute(p11.CKA_VALUE_LEN, nil))
	} else {
		q = append(q, p11.NewAttribute(p11.CKA_EC_PARAMS, nil))
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
			return fmt.Errorf("%w: key has %s=%x, want %v", ErrTokenFault, w.name, v, w.val)
		}
	}
	if kt, ok := ulong(got[len(want)].Value); !ok || kt != uint64(keyType) {
		return fmt.Errorf("%w: key has the wrong CKA_KEY_TYPE", ErrTokenFault)
	}
	last := got[len(want)+1].Value
	if keyType == p11.CKK_AES {
		if n, ok := ulong(last); !ok || n != 32 {
			return fmt.Errorf("%w: AES key is not 256 bits", ErrTokenFault)
		}
	} else if string(last) != string(ecP256Params) {
		return fmt.Errorf("%w: EC key is not on P-256", ErrTokenFault)
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
