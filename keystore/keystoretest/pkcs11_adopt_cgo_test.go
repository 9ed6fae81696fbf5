//go:build cgo

package keystoretest

import (
	"path/filepath"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/pkcs11"
	"github.com/enigm/enigm/backend/pkcs11/pkcs11test"
	"github.com/enigm/enigm/keystore"
)

// A keystore on an adopted PIV-style key, opened later by a process that
// knows only the module and the token (the CLI passes the key id at init
// only): its status does not claim the destroy gate, which the adopted
// key cannot give, although a new store on the same token would have it.
func TestAdoptedKeyStatusClaimsNoDestroy(t *testing.T) {
	su := pkcs11test.ECAdopted
	su.Need(t)
	label := su.Token(t)
	adopting, err := pkcs11.New(pkcs11.Options{Module: su.Module, TokenLabel: label, AdoptKeyID: su.AdoptID})
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "home")
	s, err := keystore.Init(bg, home, adopting, su.PIN(), keystore.InitOptions{Options: keystore.Options{
		Backend: func(string) (backend.Backend, error) { return adopting, nil }}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	plain, err := pkcs11.New(pkcs11.Options{Module: su.Module, TokenLabel: label})
	if err != nil {
		t.Fatal(err)
	}
	if !plain.Capabilities().Enforces(backend.GateDestroy) {
		t.Fatal("premise: a new store on this EC-only token would have the destroy gate")
	}
	s, err = keystore.Open(home, keystore.Options{Backend: func(string) (backend.Backend, error) { return plain, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range st.Gates {
		if g == backend.GateDestroy {
			t.Fatalf("a locked keystore on an adopted key reports gates %v: the adopted key stays on the token after revocation", st.Gates)
		}
	}
	if len(st.Gates) == 0 {
		t.Fatal("no gates reported at all (unlock_secret and non_exportable hold)")
	}
}
