//go:build cgo

package pkcs11

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
)

// token is the part of the PKCS#11 API the backend uses. *p11.Ctx
// implements it; tests wrap it to simulate a misbehaving token.
type token interface {
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetTokenInfo(slotID uint) (p11.TokenInfo, error)
	GetMechanismList(slotID uint) ([]*p11.Mechanism, error)
	OpenSession(slotID uint, flags uint) (p11.SessionHandle, error)
	CloseSession(sh p11.SessionHandle) error
	GetSessionInfo(sh p11.SessionHandle) (p11.SessionInfo, error)
	Login(sh p11.SessionHandle, userType uint, pin string) error
	Logout(sh p11.SessionHandle) error
	FindObjectsInit(sh p11.SessionHandle, temp []*p11.Attribute) error
	FindObjects(sh p11.SessionHandle, max int) ([]p11.ObjectHandle, bool, error)
	FindObjectsFinal(sh p11.SessionHandle) error
	GenerateKey(sh p11.SessionHandle, m []*p11.Mechanism, temp []*p11.Attribute) (p11.ObjectHandle, error)
	GenerateKeyPair(sh p11.SessionHandle, m []*p11.Mechanism, public, private []*p11.Attribute) (p11.ObjectHandle, p11.ObjectHandle, error)
	GetAttributeValue(sh p11.SessionHandle, o p11.ObjectHandle, a []*p11.Attribute) ([]*p11.Attribute, error)
	DestroyObject(sh p11.SessionHandle, oh p11.ObjectHandle) error
	EncryptInit(sh p11.SessionHandle, m []*p11.Mechanism, o p11.ObjectHandle) error
	Encrypt(sh p11.SessionHandle, message []byte) ([]byte, error)
	DecryptInit(sh p11.SessionHandle, m []*p11.Mechanism, o p11.ObjectHandle) error
	Decrypt(sh p11.SessionHandle, cipher []byte) ([]byte, error)
	SignInit(sh p11.SessionHandle, m []*p11.Mechanism, o p11.ObjectHandle) error
	Sign(sh p11.SessionHandle, message []byte) ([]byte, error)
	DeriveKey(sh p11.SessionHandle, m []*p11.Mechanism, base p11.ObjectHandle, a []*p11.Attribute) (p11.ObjectHandle, error)
	GetInfo() (p11.Info, error)
}

var _ token = (*p11.Ctx)(nil)

// module is one loaded PKCS#11 module. A module is initialized once per
// process and never finalized: C_Finalize would end every other user's
// sessions, and C_Initialize twice fails.
type module struct {
	path string
	ctx  *p11.Ctx

	mu     sync.Mutex
	logins map[string]*login // by tokenKey

	// deriveMu serializes ECDH derivations (C_DeriveKey, reading and
	// destroying the result) across the module's sessions: ykcs11 keeps
	// one derived-secret object per slot, which a second derivation in
	// another session would overwrite before the first is read.
	deriveMu sync.Mutex
}

// login is this process's user login to one token.
type login struct {
	refs     int      // logged-in sessions of this package
	verifier [32]byte // HMAC-SHA256(pinKey, PIN) of the PIN that logged in
}

var (
	modulesMu sync.Mutex
	modules   = map[string]*module{}

	// pinKey keys the in-memory PIN verifiers. It is random per process
	// and never leaves memory.
	pinKey = func() []byte {
		k := make([]byte, 32)
		rand.Read(k)
		return k
	}()
)

// findModule resolves the module path: the given one, or the first
// default that exists.
func findModule(path string) (string, error) {
	if path == "" {
		for _, p := range DefaultModulePaths {
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			return "", fmt.Errorf("%w: no PKCS#11 module found (searched %v); install SoftHSM2 or set Options.Module", backend.ErrUnavailable, DefaultModulePaths)
		}
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: PKCS#11 module: %v", backend.ErrUnavailable, err)
	}
	// The same library under two names is one module: key by real path.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("%w: PKCS#11 module: %v", backend.ErrUnavailable, err)
	}
	return filepath.Abs(real)
}

// loadModule loads and initializes the module at path once per process.
func loadModule(path string) (*module, error) {
	path, err := findModule(path)
	if err != nil {
		return nil, err
	}
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m, ok := modules[path]; ok {
		return m, nil
	}
	ctx := p11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("%w: cannot load PKCS#11 module %s", backend.ErrUnavailable, path)
	}
	if err := ctx.Initialize(); err != nil && !isCKR(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: C_Initialize of %s: %w", backend.ErrUnavailable, path, err)
	}
	m := &module{path: path, ctx: ctx, logins: map[string]*login{}}
	modules[path] = m
	return m, nil
}

func tokenKey(serial, label string) string { return serial + "\x00" + label }

func pinVerifier(pin []byte) [32]byte {
	mac := hmac.New(sha256.New, pinKey)
	mac.Write(pin)
	var v [32]byte
	mac.Sum(v[:0])
	return v
}

// acquireLogin logs the process in to the token (key) through session sh,
// checking pin even when the process is already logged in.
func (m *module) acquireLogin(tok token, sh p11.SessionHandle, key string, pin []byte) error {
	if len(pin) == 0 {
		return fmt.Errorf("%w: the token PIN must not be empty", backend.ErrBadSecret)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logins[key]
	// The PIN reaches the module as a Go string (miekg/pkcs11's API);
	// that copy cannot be zeroed.
	err := tok.Login(sh, p11.CKU_USER, string(pin))
	switch {
	case err == nil:
		if l == nil {
			l = &login{}
			m.logins[key] = l
		}
		l.verifier = pinVerifier(pin)
		l.refs++
		return nil
	case isCKR(err, p11.CKR_USER_ALREADY_LOGGED_IN):
		// The token did not check the PIN: compare it with the one
		// that logged in.
		if l == nil || l.refs == 0 {
			return fmt.Errorf("%w: the token is already logged in by another part of this process, so the PIN cannot be checked; close that session first", backend.ErrUnavailable)
		}
		v := pinVerifier(pin)
		if !hmac.Equal(v[:], l.verifier[:]) {
			return fmt.Errorf("%w: PIN does not match the one this process is logged in with", backend.ErrBadSecret)
		}
		l.refs++
		return nil
	}
	return tokenErr("C_Login", err)
}

// releaseLogin drops one reference; the last one logs out through sh.
func (m *module) releaseLogin(tok token, sh p11.SessionHandle, key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logins[key]
	if l == nil || l.refs == 0 {
		return
	}
	l.refs--
	if l.refs == 0 {
		delete(m.logins, key)
		tok.Logout(sh) // best effort: closing the last session logs out too
	}
}

// loggedIn reports whether this package holds a login to the token.
func (m *module) loggedIn(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logins[key]
	return l != nil && l.refs > 0
}

func isCKR(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}
