package keystoretest

import (
	"bytes"
	"context"
	"crypto"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/platform"
	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/backend/platform/simulated"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/keystore"
)

var bg = context.Background()

// defaultSecret is the unlock secret of every env whose backend takes it
// (a PKCS#11 setup uses its token's PIN; openCryptoki takes 4 to 8 bytes).
var defaultSecret = []byte("correct horse battery staple")

// authWindow is the user-authentication validity window of the simulated
// platforms' keys in these tests.
const authWindow = time.Minute

// strongBoxTestDelay is the StrongBox profile's per-operation delay in
// tests: small, so the suite stays fast; the benchmarks use a realistic one.
const strongBoxTestDelay = 2 * time.Millisecond

func TestMain(m *testing.M) {
	os.Exit(func() int {
		stop := setupPKCS11()
		defer stop()
		return m.Run()
	}())
}

// env is one backend under test.
type env struct {
	name string
	raw  backend.Backend // the backend itself
	cb   *counting       // raw, counting every call; what the keystore uses
	dev  *simulated.Device
	now  func() time.Time

	// secret unlocks the store; wrong is a secret of the same length that
	// must not (so a token's PIN length rules pass it on to the token).
	secret, wrong []byte
	// token is set on the PKCS#11 setups: what the token itself offers
	// and lets the tests check around the backend.
	token *tokenEnv
}

// tokenEnv is what a PKCS#11 env's token setup says about the token, and
// a way around the backend to the token.
type tokenEnv struct {
	setup string // pkcs11test's setup name
	ec    bool   // the token offers EC P-256 key pairs
	// keys checks, on the token itself, that every secret and private key
	// is sensitive, not extractable and unreadable; it returns how many
	// keys it checked.
	keys func(t testing.TB) int
}

// maker makes a fresh env; it skips (or fails under ENIGM_REQUIRE_ALL=1)
// when its component is missing.
type maker struct {
	name string
	new  func(t testing.TB) *env
}

func newEnv(name string, b backend.Backend, dev *simulated.Device) *env {
	e := &env{name: name, raw: b, cb: &counting{Backend: b}, dev: dev, now: time.Now, secret: defaultSecret}
	e.wrong = bytes.Clone(defaultSecret)
	e.wrong[len(e.wrong)-1] ^= 0x01
	if dev != nil {
		e.now = dev.Now
	}
	return e
}

// softMaker is the software backend with testkit's fast KDF costs.
var softMaker = maker{"soft", func(testing.TB) *env {
	return newEnv("soft", testkit.Must(testkit.SoftBackend("soft")), nil)
}}

// makers lists every backend: PKCS#11 on every token setup of
// backend/pkcs11/pkcs11test; tpmMaker and pkcs11Makers come from files
// that need cgo.
func makers() []maker {
	ms := []maker{softMaker, tpmMaker()}
	ms = append(ms, pkcs11Makers()...)
	return append(ms,
		maker{"secure-enclave-sim", func(t testing.TB) *env {
			return platformEnv(t, "secure-enclave-sim", simulated.SecureEnclave(), testkit.FastKDF)
		}},
		maker{"strongbox-sim", func(t testing.TB) *env {
			return platformEnv(t, "strongbox-sim", simulated.StrongBox(strongBoxTestDelay), testkit.FastKDF)
		}},
	)
}

func platformEnv(t testing.TB, name string, p simulated.Profile, kdf soft.Params) *env {
	d := simulated.New(p)
	d.Authenticate(bridge.AuthBiometric)
	b, err := platform.New(d, platform.Options{KDF: kdf, UserAuth: bridge.AuthBiometric | bridge.AuthDeviceCredential, AuthValidity: authWindow})
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(name, b, d)
}

// forEach runs f over every backend.
func forEach(t *testing.T, f func(t *testing.T, e *env)) {
	for _, m := range makers() {
		t.Run(m.name, func(t *testing.T) { f(t, m.new(t)) })
	}
}

// counting wraps a backend and counts every call that reaches it, and
// remembers what the keystore provisioned, so that tests can go around the
// keystore (and its Go-side policy) to the backend directly.
type counting struct {
	backend.Backend
	calls atomic.Int64

	mu       sync.Mutex
	states   [][]byte
	bindings [][]byte
	sessions []backend.Session
}

func (c *counting) Provision(ctx context.Context, s []byte) ([]byte, error) {
	c.calls.Add(1)
	st, err := c.Backend.Provision(ctx, s)
	if err == nil {
		c.mu.Lock()
		c.states = append(c.states, st)
		c.mu.Unlock()
	}
	return st, err
}

func (c *counting) Destroy(ctx context.Context, st []byte) error {
	c.calls.Add(1)
	return c.Backend.Destroy(ctx, st)
}

func (c *counting) Open(ctx context.Context, st, s []byte) (backend.Session, error) {
	c.calls.Add(1)
	sess, err := c.Backend.Open(ctx, st, s)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.sessions = append(c.sessions, sess)
	c.mu.Unlock()
	cs := &countingSession{Session: sess, c: c}
	if bk, ok := sess.(backend.BindingKeys); ok {
		return &countingBindingSession{cs, bk}, nil
	}
	return cs, nil
}

// newest is the last of what c recorded in *xs; if there is none the test
// fails with none.
func newest[T any](t testing.TB, c *counting, xs *[]T, none string) T {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(*xs) == 0 {
		t.Fatal(none)
	}
	return (*xs)[len(*xs)-1]
}

// state is the state the keystore provisioned.
func (c *counting) state(t testing.TB) []byte { return newest(t, c, &c.states, "nothing provisioned") }

// session is the last session the keystore opened (the one an unlocked
// store holds).
func (c *counting) session(t testing.TB) backend.Session {
	return newest(t, c, &c.sessions, "no session")
}

func (c *counting) binding(t testing.TB) []byte { return newest(t, c, &c.bindings, "no binding key") }

type countingSession struct {
	backend.Session
	c *counting
}

func (s *countingSession) Seal(ctx context.Context, l string, p []byte) ([]byte, error) {
	s.c.calls.Add(1)
	return s.Session.Seal(ctx, l, p)
}

func (s *countingSession) Unseal(ctx context.Context, l string, p []byte) ([]byte, error) {
	s.c.calls.Add(1)
	return s.Session.Unseal(ctx, l, p)
}

type countingBindingSession struct {
	*countingSession
	bk backend.BindingKeys
}

func (s *countingBindingSession) CreateBindingKey(ctx context.Context) ([]byte, crypto.Signer, error) {
	s.c.calls.Add(1)
	blob, k, err := s.bk.CreateBindingKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.c.mu.Lock()
	s.c.bindings = append(s.c.bindings, blob)
	s.c.mu.Unlock()
	return blob, &countingSigner{k, s.c}, nil
}

func (s *countingBindingSession) LoadBindingKey(ctx context.Context, blob []byte) (crypto.Signer, error) {
	s.c.calls.Add(1)
	k, err := s.bk.LoadBindingKey(ctx, blob)
	if err != nil {
		return nil, err
	}
	return &countingSigner{k, s.c}, nil
}

type countingSigner struct {
	crypto.Signer
	c *counting
}

func (k *countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	k.c.calls.Add(1)
	return k.Signer.Sign(r, d, o)
}

// appPurpose is an application signing purpose for tests.
func appPurpose(label string) keystore.Purpose {
	p, err := keystore.AppPurpose(label)
	if err != nil {
		panic(err)
	}
	return p
}
