//go:build cgo

package keystoretest

import (
	"fmt"
	"runtime"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend/pkcs11"
	"github.com/enigm/enigm/backend/pkcs11/pkcs11test"
)

// The PKCS#11 backend runs on every token setup of pkcs11test (SoftHSM2
// full, without GCM, EC-only; openCryptoki's soft token): TestMain loads
// them before any other module, each SoftHSM2 env initializes its own
// token, and every env unlocks with its token's PIN.

func setupPKCS11() func() { return pkcs11test.Start(pkcs11.DefaultModulePaths) }

// pkcs11Makers has one maker per token setup, named pkcs11/<setup>.
func pkcs11Makers() []maker {
	var ms []maker
	for _, su := range pkcs11test.All() {
		ms = append(ms, maker{"pkcs11/" + su.Name, func(t testing.TB) *env { return pkcs11Env(t, su) }})
	}
	return ms
}

// hsmMaker is SoftHSM2 with every mechanism, for the benchmarks (their
// rows keep the name softhsm2).
func hsmMaker() maker {
	return maker{"softhsm2", func(t testing.TB) *env { return pkcs11Env(t, pkcs11test.Full) }}
}

func pkcs11Env(t testing.TB, su *pkcs11test.Setup) *env {
	t.Helper()
	label := su.Token(t)
	b, err := pkcs11.New(pkcs11.Options{Module: su.Module, TokenLabel: label, AdoptKeyID: su.AdoptID})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv("pkcs11/"+su.Name, b, nil)
	e.secret, e.wrong = su.PIN(), su.WrongPIN()
	e.token = &tokenEnv{
		setup: su.Name,
		ec:    su.EC,
		keys:  func(t testing.TB) int { return checkTokenKeys(t, su, label) },
	}
	return e
}

// checkTokenKeys goes around the backend to the token: every secret and
// private key on it must be sensitive and not extractable, and its value
// must not be readable. It returns how many keys it checked.
func checkTokenKeys(t testing.TB, su *pkcs11test.Setup, label string) int {
	t.Helper()
	ctx, sh, done := su.Session(t, label)
	defer done()
	n := 0
	for _, class := range []uint{p11.CKO_SECRET_KEY, p11.CKO_PRIVATE_KEY} {
		if err := ctx.FindObjectsInit(sh, []*p11.Attribute{p11.NewAttribute(p11.CKA_CLASS, class)}); err != nil {
			t.Fatal(err)
		}
		var hs []p11.ObjectHandle
		for {
			more, _, err := ctx.FindObjects(sh, 64)
			if err != nil {
				t.Fatal(err)
			}
			if len(more) == 0 {
				break
			}
			hs = append(hs, more...)
		}
		if err := ctx.FindObjectsFinal(sh); err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			as, err := ctx.GetAttributeValue(sh, h, []*p11.Attribute{
				p11.NewAttribute(p11.CKA_SENSITIVE, nil),
				p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
			})
			if err != nil {
				t.Fatalf("key %d (class %d): %v", h, class, err)
			}
			if !isTrue(as[0].Value) || isTrue(as[1].Value) {
				t.Fatalf("key %d (class %d): CKA_SENSITIVE %x, CKA_EXTRACTABLE %x; want sensitive and not extractable", h, class, as[0].Value, as[1].Value)
			}
			v, err := ctx.GetAttributeValue(sh, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
			if err == nil && len(v) == 1 && len(v[0].Value) > 0 {
				t.Fatalf("key %d (class %d): the token returned its value (%d bytes)", h, class, len(v[0].Value))
			}
			n++
		}
	}
	return n
}

func isTrue(v []byte) bool { return len(v) == 1 && v[0] != 0 }

// fatalRecorder is a testing.TB whose Fatal stops only the goroutine
// running the check and records the message.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(a ...any) {
	r.msg = fmt.Sprint(a...)
	runtime.Goexit()
}
func (r *fatalRecorder) Fatalf(f string, a ...any) {
	r.msg = fmt.Sprintf(f, a...)
	runtime.Goexit()
}

// The token-side non-exportability check can fail: it passes on a token
// holding one sensitive, non-extractable AES key, and refuses the same
// token once a key whose value can be read is added.
func TestTokenKeyCheckCatchesReadableKeys(t *testing.T) {
	su := pkcs11test.Full
	su.Need(t)
	label := su.Token(t)
	ctx, sh, done := su.Session(t, label)
	defer done()
	aes := func(readable bool) {
		t.Helper()
		_, err := ctx.GenerateKey(sh, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
			p11.NewAttribute(p11.CKA_SENSITIVE, !readable),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, readable),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func() (int, string) {
		r := &fatalRecorder{TB: t}
		n := -1
		done := make(chan struct{})
		go func() {
			defer close(done)
			n = checkTokenKeys(r, su, label)
		}()
		<-done
		return n, r.msg
	}
	aes(false)
	if n, msg := check(); n != 1 || msg != "" {
		t.Fatalf("one unreadable key: checked %d, failure %q; want 1 and none", n, msg)
	}
	aes(true)
	if _, msg := check(); msg == "" {
		t.Fatal("a key with CKA_SENSITIVE false and CKA_EXTRACTABLE true passed the check")
	}
}
