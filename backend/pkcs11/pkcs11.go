//go:build cgo

package pkcs11

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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
	return &Backend{opts: opts, mod: mod, tok: tok, slots: map[string]uint{}}, nil
}

// Capabilities reports a PKCS#11 token: P-256 and AES-256 keys held on the
// token; unlock secret, non-exportability and destruction enforced by it.
func (b *Backend) Capabilities() backend.Capabilities { return capabilities() }

// mechanisms the backend needs from the token.
var needMechs = []struct {
	mech uint
	name string
}{
	{p11.CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"},
	{p11.CKM_AES_GCM, "CKM_AES_GCM"},
	{p11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"},
	{p11.CKM_ECDSA, "CKM_ECDSA"},
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
	ms, err := b.tok.GetMechanismList(t.slot)
	if err != nil {
		return slotInfo{}, tokenErr("C_GetMechanismList", err)
	}
	have := map[uint]bool{}
	for _, m := range ms {
		have[m.Mechanism] = true
	}
	for _, m := range needMechs {
		if !have[m.mech] {
			return slotInfo{}, fmt.Errorf("pkcs11: token %q does not offer %s, which this backend needs", t.label, m.name)
		}
	}
	return t, nil
}

// Provision creates a store on the selected token: it logs in with the PIN
// (secret) and generates the store's destroy key. The state names the
// token (serial and label) and holds the random store id.
func (b *Backend) Provision(ctx context.Context, secret []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := b.selectToken()
	if err != nil {
		return nil, err
	}
	st := &state{Version: stateVersion, Scheme: schemeGCM2, StoreID: make([]byte, storeIDSize), Serial: t.serial, Label: t.label}
	rand.Read(st.StoreID)
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("pkcs11: token serial %q or label %q cannot be recorded: %w", t.serial, t.label, err)
	}
	enc, err := wire.Marshal(st)
	if err != nil {
		return nil, err
	}
	c, err := b.dialSlot(t.slot, st)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.login(secret); err != nil {
		return nil, err
	}
	if _, err := c.generateAES(c.destroyKeyTemplate(), false); err != nil {
		return nil, err
	}
	return enc, nil
}

// Open logs in to the store's token with the PIN (secret) and returns a
// session. A store whose destroy key is gone returns [backend.ErrDestroyed]
// without trying the PIN.
func (b *Backend) Open(ctx context.Context, stateBytes, secret []byte) (backend.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := parseState(stateBytes)
	if err != nil {
		return nil, err
	}
	c, err := b.dial(st)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	d, err := c.findOne("destroy key", c.destroyKeyTemplate())
	if errors.Is(err, errNotFound) {
		return nil, fmt.Errorf("%w: the store's destroy key is not on token %q (the store was destroyed, or the token re-initialized)", backend.ErrDestroyed, st.Label)
	} else if err != nil {
		return nil, err
	}
	if err := c.login(secret); err != nil {
		return nil, err
	}
	if err := c.checkKey(d, p11.CKK_AES, false); err != nil {
		return nil, err
	}
	ok = true
	return &session{c: c, destroyKey: d, keks: map[string]p11.ObjectHandle{}}, nil
}

// Destroy deletes the store's token objects without the PIN. It always
// deletes the destroy key (the store's one object visible without login),
// so nothing the store sealed unseals again, from any copy, even with the
// PIN, and no session opens the state. If this process is logged in to the
// token (a session is open), it deletes the private wrapping and binding
// keys too; otherwise they stay on the token, unusable for unsealing,
// until [Backend.Purge] removes them. Destroying a destroyed store
// succeeds.
func (b *Backend) Destroy(ctx context.Context, stateBytes []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := parseState(stateBytes)
	if err != nil {
		return err
	}
	c, err := b.dial(st)
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
	if err := ctx.Err(); err != nil {
		return err
	}
	st, err := parseState(stateBytes)
	if err != nil {
		return err
	}
	c, err := b.dial(st)
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
