//go:build cgo

package pkcs11

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/wire"
)

// Backend is the PKCS#11 backend. It is safe for concurrent use.
type Backend struct {
	opts Options
	mod  *module
	tok  token

	capsMu sync.Mutex
	caps   backend.Capabilities // of the token Options select, read at New; of the store after Open of an adopted key

	slotMu sync.Mutex
	slots  map[string]uint // last slot each token (tokenKey) was found in
}

var _ backend.Backend = (*Backend)(nil)

// New loads the PKCS#11 module named in opts (once per process; it stays
// loaded) and returns a backend over its tokens. A missing module is an
// error wrapping [backend.ErrUnavailable].
func New(opts Options) (*Backend, error) { return newBackend(opts, nil) }

// newBackend is New with the token calls routed through wrap (tests).
func newBackend(opts Options, wrap func(token) token) (*Backend, error) {
	mod, err := loadModule(opts.Module)
	if err != nil {
		return nil, err
	}
	var tok token = mod.ctx
	if wrap != nil {
		tok = wrap(tok)
	}
	b := &Backend{opts: opts, mod: mod, tok: tok, slots: map[string]uint{}, caps: capabilities()}
	defer func() {
		if opts.PINOnlyDestroy { // the token may not be able to destroy without the PIN
			b.caps.HardwareGates = withoutGate(b.caps.HardwareGates, backend.GateDestroy)
		}
	}()
	if len(opts.AdoptKeyID) != 0 {
		b.caps = adoptedCaps()
		return b, nil
	}
	if t, err := b.selectToken(); err == nil {
		if ms, err := b.tok.GetMechanismList(t.slot); err == nil {
			have := mechSet(ms)
			var id uint8 // 0: the token can host no scheme (Provision will say why)
			if cs, err := candidates(t.label, have, opts.Scheme); err == nil {
				id = cs[0].id
			}
			b.caps = capsFor(id, len(missing(have, bindingNeed)) == 0)
		}
	}
	return b, nil
}

// Capabilities reports what a store on the token Options select has, as
// read from its mechanism list when New ran: AES-256 keys on the token for
// the AES schemes, P-256 binding keys where the token signs with EC;
// unlock secret, non-exportability and destruction enforced by the token
// in every scheme (Provision refuses a token that cannot provide them).
// When New found no such token, it reports what a token with every
// mechanism offers; for a token that can host no scheme, no AES keys.
//
// With Options.AdoptKeyID, and after Open of a store on an adopted key, it
// reports that store's: no resident keys, and no backend.GateDestroy (the
// adopted key stays on the token).
func (b *Backend) Capabilities() backend.Capabilities {
	b.capsMu.Lock()
	defer b.capsMu.Unlock()
	return b.caps
}

// selectToken picks the token Provision uses.
func (b *Backend) selectToken() (slotInfo, error) {
	ts, err := b.tokensPresent()
	if err != nil {
		return slotInfo{}, err
	}
	var match []slotInfo
	for _, t := range ts {
		if (b.opts.TokenLabel == "" || t.label == b.opts.TokenLabel) &&
			(b.opts.TokenSerial == "" || t.serial == b.opts.TokenSerial) {
			match = append(match, t)
		}
	}
	switch {
	case len(match) == 0:
		return slotInfo{}, fmt.Errorf("%w: no initialized token with label %q and serial %q in %s", backend.ErrUnavailable, b.opts.TokenLabel, b.opts.TokenSerial, b.mod.path)
	case len(match) > 1:
		return slotInfo{}, fmt.Errorf("pkcs11: %d tokens match label %q and serial %q; set Options.TokenSerial", len(match), b.opts.TokenLabel, b.opts.TokenSerial)
	}
	t := match[0]
	if t.flags&p11.CKF_WRITE_PROTECTED != 0 {
		return slotInfo{}, fmt.Errorf("pkcs11: token %q is write-protected", t.label)
	}
	if t.flags&p11.CKF_USER_PIN_INITIALIZED == 0 {
		return slotInfo{}, fmt.Errorf("pkcs11: token %q has no user PIN; initialize it first", t.label)
	}
	return t, nil
}

// Provision creates a store on the selected token: it chooses the
// protection scheme from the token's mechanism list (Options.Scheme, or
// the first the token offers), logs in with the PIN (secret) and creates
// the store's destroy key. If the token refuses to create it for one
// scheme (some tokens advertise mechanisms they do not implement), the
// next is tried. The state names the token (serial and label), the scheme
// and the random store id.
func (b *Backend) Provision(ctx context.Context, secret []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if info, err := b.tok.GetInfo(); err == nil && strings.Contains(strings.ToLower(info.ManufacturerID), "tpm2-software") {
		return nil, fmt.Errorf("%w: %s is tpm2-pkcs11, which keeps no object usable without the PIN (so Destroy on revocation cannot work) and counts every wrong PIN against the TPM's dictionary-attack lockout; for a TPM use Enigm's TPM backend, which seals to the TPM directly", ErrNoPublicObjects, b.mod.path)
	}
	t, err := b.selectToken()
	if err != nil {
		return nil, err
	}
	ms, err := b.tok.GetMechanismList(t.slot)
	if err != nil {
		return nil, tokenErr("C_GetMechanismList", err)
	}
	if len(b.opts.AdoptKeyID) != 0 {
		return b.provisionAdopted(t, mechSet(ms), secret)
	}
	cands, err := candidates(t.label, mechSet(ms), b.opts.Scheme)
	if err != nil {
		return nil, err
	}
	st := &state{Version: stateVersion, Scheme: cands[0].id, StoreID: make([]byte, storeIDSize), Serial: t.serial, Label: t.label}
	rand.Read(st.StoreID)
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("pkcs11: token serial %q or label %q cannot be recorded: %w", t.serial, t.label, err)
	}
	c, err := b.dialLogin(t.slot, st, secret)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var errs []error
	modes := []bool{false}
	if b.opts.PINOnlyDestroy {
		modes = append(modes, true) // only if no scheme gets a public destroy key
	}
	for _, pinDestroy := range modes {
		if pinDestroy && !errors.Is(errors.Join(errs...), ErrNoPublicObjects) {
			break // the schemes failed for another reason
		}
		st.PINDestroy = pinDestroy
		for _, sc := range cands {
			st.Scheme = sc.id
			err := c.createDestroyKey()
			if err == nil {
				return wire.Marshal(st)
			}
			if errors.Is(err, backend.ErrUnavailable) || errors.Is(err, backend.ErrBadSecret) || errors.Is(err, backend.ErrLockedOut) {
				return nil, err
			}
			if pinDestroy {
				err = fmt.Errorf("with the destroy key behind the PIN: %w", err)
			}
			errs = append(errs, fmt.Errorf("scheme %s: %w", sc.name, err))
		}
	}
	return nil, fmt.Errorf("pkcs11: token %q advertises the mechanisms of %s but could not host a store: %w", t.label, names(cands), errors.Join(errs...))
}

// dialLogin opens a session on the token in slot for st and logs in with
// the PIN (secret).
func (b *Backend) dialLogin(slot uint, st *state, secret []byte) (*conn, error) {
	c, err := b.dialSlot(slot, st)
	if err != nil {
		return nil, err
	}
	if err := c.login(secret); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// createDestroyKey creates the store's destroy key for its scheme.
func (c *conn) createDestroyKey() error {
	if c.st.Scheme != schemeECDH {
		_, err := c.generateAES(c.destroyKeyTemplate(), c.st.PINDestroy)
		return err
	}
	pubT, privT := c.ecPairTemplates(objectID(c.st.StoreID, roleDestroy, nil), c.st.PINDestroy)
	_, _, err := c.generateAgreementPair(pubT, privT, c.st.PINDestroy)
	return err
}

// dialState parses a store's state and opens a session on its token.
func (b *Backend) dialState(ctx context.Context, stateBytes []byte) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := parseState(stateBytes)
	if err != nil {
		return nil, err
	}
	return b.dial(st)
}

// Open logs in to the store's token with the PIN (secret) and returns a
// session. A store whose destroy key is gone returns [backend.ErrDestroyed]
// without trying the PIN.
func (b *Backend) Open(ctx context.Context, stateBytes, secret []byte) (backend.Session, error) {
	c, err := b.dialState(ctx, stateBytes)
	if err != nil {
		return nil, err
	}
	st := c.st
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	if st.Scheme == schemeECDHAdopted {
		sess, err := b.openAdopted(c, secret)
		ok = err == nil
		return sess, err
	}
	if st.PINDestroy { // the destroy key is visible only after login
		if err := c.login(secret); err != nil {
			return nil, err
		}
	}
	d, err := c.findOne("destroy key", c.destroyKeyTemplate())
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("%w: the store's destroy key is not on token %q (the store was destroyed, or the token re-initialized)", backend.ErrDestroyed, st.Label)
	} else if err != nil {
		return nil, err
	}
	if !st.PINDestroy {
		if err := c.login(secret); err != nil {
			return nil, err
		}
	}
	s := &session{c: c, destroyKey: d, keks: map[string]p11.ObjectHandle{}, macs: map[string]p11.ObjectHandle{}, pubs: map[string]*ecdh.PublicKey{}}
	if st.Scheme == schemeECDH {
		pubT, _ := c.ecPairTemplates(objectID(st.StoreID, roleDestroy, nil), st.PINDestroy)
		if s.destroyPub, err = c.agreementPub(d, pubT, st.PINDestroy); err != nil {
			return nil, err
		}
	} else if err := c.checkKey(d, p11.CKK_AES, st.PINDestroy); err != nil {
		return nil, err
	}
	ms, err := b.tok.GetMechanismList(c.slot)
	if err != nil {
		return nil, tokenErr("C_GetMechanismList", err)
	}
	if m := missing(mechSet(ms), schemeByID(st.Scheme).need); len(m) != 0 {
		return nil, fmt.Errorf("%w: token %q no longer offers %s, which the store's scheme %s needs", ErrMechanisms, st.Label, strings.Join(m, ", "), schemeByID(st.Scheme).name)
	}
	ok = true
	if len(missing(mechSet(ms), bindingNeed)) != 0 {
		return sealSession{s}, nil // no binding keys on this token
	}
	return s, nil
}

// Destroy deletes the store's token objects without the PIN. It always
// deletes the destroy key (the store's one object visible without login),
// so nothing the store sealed unseals again, from any copy, even with the
// PIN, and no session opens the state. If this process is logged in to the
// token (a session is open), it deletes the private wrapping and binding
// keys too; otherwise they stay on the token, unusable for unsealing,
// until [Backend.Purge] removes them. Destroying a destroyed store
// succeeds.
//
// A store provisioned with Options.PINOnlyDestroy on a token that keeps
// every key behind the PIN has no such destroy key: there, Destroy without
// a logged-in session removes nothing, and only Purge with the PIN (or the
// token's security officer re-initializing the token) removes its keys.
// Its backend does not claim [backend.GateDestroy].
//
// A store on an adopted key (Options.AdoptKeyID) has no object of its own
// on the token: Destroy and Purge remove nothing, and the adopted key
// stays, usable by whoever has the token and its PIN; the keystore's
// sealed data is what revocation deletes. Wipe the key with the token
// vendor's tool (docs/design/pkcs11.md).
func (b *Backend) Destroy(ctx context.Context, stateBytes []byte) error {
	if adopted, err := adoptedState(ctx, stateBytes); adopted || err != nil {
		return err
	}
	c, err := b.dialState(ctx, stateBytes)
	if err != nil {
		return err
	}
	defer c.close()
	if _, err := c.destroyAll(); err != nil {
		return err
	}
	if d, err := c.find(c.destroyKeyTemplate()); err != nil {
		return err
	} else if len(d) != 0 {
		return fmt.Errorf("pkcs11: the token kept the store's destroy key after C_DestroyObject")
	}
	return nil
}

// Purge logs in with the PIN (secret) and deletes every token object of the
// store, including the private keys a Destroy without login leaves behind.
// It works on destroyed stores too.
func (b *Backend) Purge(ctx context.Context, stateBytes, secret []byte) error {
	if adopted, err := adoptedState(ctx, stateBytes); adopted || err != nil {
		return err
	}
	c, err := b.dialState(ctx, stateBytes)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.login(secret); err != nil {
		return err
	}
	left, err := c.destroyAll()
	if err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("pkcs11: %d objects of the store remain on the token after C_DestroyObject", left)
	}
	return nil
}

// adoptedState reports whether stateBytes is a store on an adopted key
// (which has no token object of its own to delete).
func adoptedState(ctx context.Context, stateBytes []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	st, err := parseState(stateBytes)
	if err != nil {
		return false, err
	}
	return st.Scheme == schemeECDHAdopted, nil
}
