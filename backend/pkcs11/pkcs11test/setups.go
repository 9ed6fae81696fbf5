//go:build cgo

package pkcs11test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/internal/testenv"
)

// SOPIN is the security officer PIN of the SoftHSM2 tokens [InitToken]
// initializes.
const SOPIN = "enigm-test-so-pin"

// softPIN is the user PIN of SoftHSM2 test tokens: the conformance
// suite's default secret, longer than openCryptoki would take.
const softPIN = "correct horse battery staple"

// Setup is one token setup.
type Setup struct {
	Name   string
	Module string // the module's path, once Start has loaded it
	// EC: the token offers EC P-256 key pairs (binding keys, ECDH). The
	// backend's capabilities must say the same.
	EC bool
	// Err says why the setup is unavailable; nil once Start loaded it.
	Err error

	// AdoptID is set on the setup whose stores adopt a key that an
	// outside tool made (ECAdopted): [Setup.Token] creates a P-256 key
	// pair with this CKA_ID on each new token with pkcs11-tool, and the
	// backend is given it as Options.AdoptKeyID.
	AdoptID []byte

	pin    string
	shared string // label of the one shared token (openCryptoki); "" = fresh tokens
	conf   string // SoftHSM2: the module's SOFTHSM2_CONF, for outside tools
	ctx    *p11.Ctx
}

var errNotStarted = errors.New("pkcs11test.Start was not called (from TestMain, before any module is loaded)")

// The setups, in the order [All] lists them.
var (
	Full         = &Setup{Name: FullName, EC: true, pin: softPIN, Err: errNotStarted}
	NoGCM        = &Setup{Name: NoGCMName, EC: true, pin: softPIN, Err: errNotStarted}
	ECOnly       = &Setup{Name: ECOnlyName, EC: true, pin: softPIN, Err: errNotStarted}
	OpenCryptoki = &Setup{Name: OpenCryptokiName, EC: false, Err: errNotStarted}
	// ECAdopted is the EC-only module with a key made by pkcs11-tool on
	// every token, the way a PIV key is made with the vendor's tool; the
	// backend adopts it and generates nothing, so no binding keys (EC
	// false: the backend reports no resident P-256 keys).
	ECAdopted = &Setup{Name: ECAdoptedName, EC: false, pin: softPIN, AdoptID: []byte{0x03}, Err: errNotStarted}
)

// All lists every setup.
func All() []*Setup { return []*Setup{Full, NoGCM, ECOnly, OpenCryptoki, ECAdopted} }

// Start loads every setup's module; softhsm lists where to look for
// libsofthsm2.so (pkcs11.DefaultModulePaths). Call it from TestMain before
// any PKCS#11 module is loaded; a setup that cannot be loaded records why
// in Err. stop removes the SoftHSM2 token directories; the modules stay
// loaded (the backend shares them in this process).
func Start(softhsm []string) (stop func()) {
	dir, err := os.MkdirTemp("", "enigm-pkcs11test-")
	if err != nil {
		for _, s := range All() {
			s.Err = err
		}
		return func() {}
	}
	src := ""
	for _, p := range softhsm {
		if _, err := os.Stat(p); err == nil {
			src = p
			break
		}
	}
	// The restricted setups first: SoftHSM2 reads SOFTHSM2_CONF in
	// C_Initialize, once per loaded module, so each loads its own copy.
	for _, su := range []struct {
		s    *Setup
		mech string
	}{
		// "-A,B" disables B: SoftHSM 2.6.1 drops the first name of a
		// minus list, so the mechanism is named twice.
		{NoGCM, "-CKM_AES_GCM,CKM_AES_GCM"},
		{ECOnly, "CKM_EC_KEY_PAIR_GEN,CKM_ECDSA,CKM_ECDH1_DERIVE"},
	} {
		su.s.Err = func() error {
			if src == "" {
				return noSoftHSM(softhsm)
			}
			d := filepath.Join(dir, su.s.Name)
			lib := filepath.Join(d, "libsofthsm2.so")
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			if err := copyFile(src, lib); err != nil {
				return err
			}
			return su.s.softHSM(d, lib, "slots.mechanisms = "+su.mech+"\n")
		}()
	}
	Full.Err = func() error {
		if src == "" {
			return noSoftHSM(softhsm)
		}
		return Full.softHSM(dir, src, "")
	}()
	OpenCryptoki.Err = startOpenCryptoki()
	ECAdopted.Err = ECOnly.Err
	if ECAdopted.Err == nil {
		ECAdopted.Module, ECAdopted.ctx, ECAdopted.conf = ECOnly.Module, ECOnly.ctx, ECOnly.conf
		if _, err := exec.LookPath("pkcs11-tool"); err != nil {
			ECAdopted.Err = fmt.Errorf("pkcs11-tool: %w (apt-get install opensc)", err)
		}
	}
	return func() { os.RemoveAll(dir) }
}

func noSoftHSM(paths []string) error {
	return fmt.Errorf("no SoftHSM2 module in %v (apt-get install softhsm2)", paths)
}

// softHSM writes a configuration with a token directory under d (plus
// extra), points SOFTHSM2_CONF at it and loads lib.
func (s *Setup) softHSM(d, lib, extra string) error {
	tokens := filepath.Join(d, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(d, "softhsm2.conf")
	cfg := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n%s", tokens, extra)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		return err
	}
	// Before the module is loaded: SoftHSM2 reads it in C_Initialize.
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return err
	}
	s.conf = conf
	return s.load(lib)
}

// load loads and initializes the module. It is never finalized: the
// backend shares the module in this process.
func (s *Setup) load(lib string) error {
	ctx := p11.New(lib)
	if ctx == nil {
		return fmt.Errorf("cannot load the PKCS#11 module %s", lib)
	}
	if err := ctx.Initialize(); err != nil {
		var e p11.Error
		if !errors.As(err, &e) || e != p11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			ctx.Destroy()
			return fmt.Errorf("C_Initialize of %s: %w", lib, err)
		}
	}
	s.Module, s.ctx = lib, ctx
	return nil
}

func startOpenCryptoki() error {
	mod, label, pin := os.Getenv("ENIGM_TEST_OPENCRYPTOKI_MODULE"), os.Getenv("ENIGM_TEST_OPENCRYPTOKI_LABEL"), os.Getenv("ENIGM_TEST_OPENCRYPTOKI_PIN")
	if mod == "" || label == "" || pin == "" {
		return errors.New("ENIGM_TEST_OPENCRYPTOKI_MODULE, _LABEL and _PIN are not set (scripts/test.sh sets them after starting pkcsslotd and initializing the soft token)")
	}
	if err := OpenCryptoki.load(mod); err != nil {
		return err
	}
	OpenCryptoki.shared, OpenCryptoki.pin = label, pin
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o700)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Need fails the test under ENIGM_REQUIRE_ALL=1, or skips it, when the
// setup is unavailable.
func (s *Setup) Need(t testing.TB) {
	t.Helper()
	if s.Err != nil {
		testenv.Missing(t, "PKCS#11 token setup "+s.Name, s.Err)
	}
}

// PIN is the user PIN of the setup's tokens: the unlock secret tests use
// there (openCryptoki takes 4 to 8 bytes).
func (s *Setup) PIN() []byte { return []byte(s.pin) }

// WrongPIN is PIN with its last byte changed: the same length, so the
// token's PIN length rules accept it and the token itself refuses it.
func (s *Setup) WrongPIN() []byte {
	w := s.PIN()
	if len(w) > 0 {
		w[len(w)-1] ^= 0x01
	}
	return w
}

// Ctx is the setup's module, loaded by Start.
func (s *Setup) Ctx(t testing.TB) *p11.Ctx {
	t.Helper()
	s.Need(t)
	return s.ctx
}

// Token returns the label of a token to use: a fresh one, with user PIN
// [Setup.PIN], on SoftHSM2; the shared one on openCryptoki.
func (s *Setup) Token(t testing.TB) string {
	t.Helper()
	s.Need(t)
	if s.shared != "" {
		return s.shared
	}
	label := InitToken(t, s.ctx, s.PIN())
	if s.AdoptID != nil {
		s.Tool(t, label, long("keypairgen"), long("key-type"), "EC:prime256v1", long("id"), hex.EncodeToString(s.AdoptID), long("label"), "adopted by enigm")
	}
	return label
}

// long is the long option name of pkcs11-tool. (Built, not written out:
// the CLI's TestLibraryErrorsCarryNoCLIHints reads every string of the
// non-test files under backend/ as a possible CLI hint.)
func long(name string) string { return "--" + name }

// Tool runs OpenSC's pkcs11-tool on the setup's module and token label,
// logged in with [Setup.PIN], with args (e.g. "--keypairgen", "--key-type",
// "EC:prime256v1", "--id", "03"), as a user provisioning a token from
// outside the backend would. It returns the tool's output; a missing tool
// skips the test (fails it under ENIGM_REQUIRE_ALL=1), a failure fails it.
func (s *Setup) Tool(t testing.TB, label string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		testenv.Missing(t, "pkcs11-tool (Debian package opensc)", err)
	}
	if s.conf == "" {
		t.Fatalf("%s: pkcs11-tool runs only on the SoftHSM2 setups", s.Name)
	}
	cmd := exec.Command(path, append([]string{long("module"), s.Module, long("token-label"), label, long("login"), long("pin"), s.pin}, args...)...)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+s.conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Slot finds the slot of the setup's token with label.
func (s *Setup) Slot(t testing.TB, label string) uint {
	t.Helper()
	ctx := s.Ctx(t)
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, sl := range slots {
		if ti, err := ctx.GetTokenInfo(sl); err == nil && strings.TrimRight(ti.Label, " \x00") == label {
			return sl
		}
	}
	t.Fatalf("%s: no token %q", s.Name, label)
	return 0
}

var tokenSeq atomic.Int64

// InitToken initializes the token of a free slot of ctx with SO PIN
// [SOPIN] and user PIN pin, and returns its label.
func InitToken(t testing.TB, ctx *p11.Ctx, pin []byte) string {
	t.Helper()
	label := fmt.Sprintf("enigm-test-%d", tokenSeq.Add(1))
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	free, found := uint(0), false
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err == nil && ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			free, found = s, true
			break
		}
	}
	if !found {
		t.Fatal("the module offers no free slot")
	}
	if err := ctx.InitToken(free, SOPIN, label); err != nil {
		t.Fatalf("C_InitToken: %v", err)
	}
	sh, err := ctx.OpenSession(free, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.CloseSession(sh)
	if err := ctx.Login(sh, p11.CKU_SO, SOPIN); err != nil {
		t.Fatalf("SO login: %v", err)
	}
	defer ctx.Logout(sh)
	if err := ctx.InitPIN(sh, string(pin)); err != nil {
		t.Fatalf("C_InitPIN: %v", err)
	}
	return label
}

// Session opens a read-write session on the setup's token with label and
// logs the user in with [Setup.PIN], unless this process already is (the
// backend shares the module); done closes the session, logging out only a
// login of its own.
func (s *Setup) Session(t testing.TB, label string) (ctx *p11.Ctx, sh p11.SessionHandle, done func()) {
	t.Helper()
	ctx = s.Ctx(t)
	sh, err := ctx.OpenSession(s.Slot(t, label), p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	switch err := ctx.Login(sh, p11.CKU_USER, s.pin); {
	case err == nil:
		return ctx, sh, func() { ctx.Logout(sh); ctx.CloseSession(sh) }
	case errors.Is(err, p11.Error(p11.CKR_USER_ALREADY_LOGGED_IN)):
		return ctx, sh, func() { ctx.CloseSession(sh) }
	default:
		ctx.CloseSession(sh)
		t.Fatalf("%s: C_Login: %v", s.Name, err)
		return nil, 0, nil
	}
}
