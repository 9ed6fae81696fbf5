//go:build cgo

package keystoretest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend/pkcs11"
	"github.com/enigm/enigm/internal/testenv"
	"github.com/enigm/enigm/internal/testkit"
)

// SoftHSM2 runs with a throwaway token directory: TestMain points
// SOFTHSM2_CONF at a generated configuration before the module is loaded,
// and each env initializes its own token (C_InitToken, C_InitPIN). No
// system token is touched.

const hsmSOPIN = "enigm-keystoretest-so"

var (
	hsmModule string
	hsmCtx    *p11.Ctx
	errHSM    = errors.New("SoftHSM2 not set up")
	hsmSeq    atomic.Int64
)

func setupHSM() func() {
	dir, err := os.MkdirTemp("", "enigm-keystoretest-softhsm-")
	if err != nil {
		errHSM = err
		return func() {}
	}
	cleanup := func() { os.RemoveAll(dir) }
	tokens := filepath.Join(dir, "tokens")
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		errHSM = err
		return cleanup
	}
	cfg := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		errHSM = err
		return cleanup
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	for _, p := range pkcs11.DefaultModulePaths {
		if _, err := os.Stat(p); err == nil {
			hsmModule = p
			break
		}
	}
	if hsmModule == "" {
		errHSM = fmt.Errorf("no SoftHSM2 module in %v (apt-get install softhsm2)", pkcs11.DefaultModulePaths)
		return cleanup
	}
	ctx := p11.New(hsmModule)
	if ctx == nil {
		errHSM = fmt.Errorf("cannot load %s", hsmModule)
		return cleanup
	}
	if err := ctx.Initialize(); err != nil {
		var e p11.Error
		if !errors.As(err, &e) || e != p11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			errHSM = err
			return cleanup
		}
	}
	// Never finalized: the backend shares the module in this process.
	hsmCtx, errHSM = ctx, nil
	return cleanup
}

// newToken initializes a fresh token with PIN secret and returns its label.
func newToken(t testing.TB) string {
	t.Helper()
	if errHSM != nil {
		testenv.Missing(t, "SoftHSM2", errHSM)
	}
	slots, err := hsmCtx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	free, found := uint(0), false
	for _, s := range slots {
		if ti, err := hsmCtx.GetTokenInfo(s); err == nil && ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			free, found = s, true
			break
		}
	}
	if !found {
		t.Fatal("SoftHSM2 has no free slot")
	}
	label := fmt.Sprintf("enigm-kst-%d", hsmSeq.Add(1))
	if err := hsmCtx.InitToken(free, hsmSOPIN, label); err != nil {
		t.Fatalf("C_InitToken: %v", err)
	}
	sh, err := hsmCtx.OpenSession(free, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	defer hsmCtx.CloseSession(sh)
	testkit.NoErr(t, hsmCtx.Login(sh, p11.CKU_SO, hsmSOPIN))
	defer hsmCtx.Logout(sh)
	testkit.NoErr(t, hsmCtx.InitPIN(sh, string(secret)))
	return label
}

// tokenSlot finds the slot of the token with label.
func tokenSlot(t testing.TB, label string) uint {
	t.Helper()
	slots, err := hsmCtx.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if ti, err := hsmCtx.GetTokenInfo(s); err == nil && strings.TrimRight(ti.Label, " \x00") == label {
			return s
		}
	}
	t.Fatalf("no token %q", label)
	return 0
}

func hsmMaker() maker {
	return maker{"softhsm2", func(t testing.TB) *env {
		label := newToken(t)
		b, err := pkcs11.New(pkcs11.Options{Module: hsmModule, TokenLabel: label})
		if err != nil {
			t.Fatal(err)
		}
		return newEnv("softhsm2", b, nil)
	}}
}
