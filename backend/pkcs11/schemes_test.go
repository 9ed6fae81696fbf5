//go:build cgo

package pkcs11

import (
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
)

// The conformance suite on every token setup, with the scheme Provision
// chooses there (with the setup's PIN: openCryptoki takes 4 to 8 bytes).
func TestConformanceSetups(t *testing.T) {
	forEachSetup(t, func(t *testing.T, su *setup) {
		label := su.token(t)
		b := su.backend(t, Options{TokenLabel: label}, nil)
		if got := b.Capabilities().Holds(backend.AlgP256); got != su.ecdsa {
			t.Fatalf("capabilities hold P-256 = %v, want %v", got, su.ecdsa)
		}
		if got := b.Capabilities().Holds(backend.AlgAES256); got != (su.scheme != schemeECDH) {
			t.Fatalf("capabilities hold AES-256 = %v on a %s token", got, schemeByID(su.scheme).name)
		}
		st, err := b.Provision(bg, su.pin)
		if err != nil {
			t.Fatal(err)
		}
		if s := mustState(t, st); s.Scheme != su.scheme {
			t.Fatalf("Provision chose scheme %d, want %d (%s)", s.Scheme, su.scheme, schemeByID(su.scheme).name)
		}
		if err := b.Destroy(bg, st); err != nil {
			t.Fatal(err)
		}
		backendtest.RunSecret(t, su.pin, func(t *testing.T) backend.Backend {
			return su.backend(t, Options{TokenLabel: label}, nil)
		})
	})
}

// Every scheme on SoftHSM2 with every mechanism, forced through
// Options.Scheme.
func TestConformanceForcedSchemes(t *testing.T) {
	for _, sc := range schemes {
		t.Run(sc.name, func(t *testing.T) {
			label := newToken(t)
			b := newTestBackendOpts(t, Options{TokenLabel: label, Scheme: sc.name}, nil)
			st, err := b.Provision(bg, pin)
			if err != nil {
				t.Fatal(err)
			}
			if s := mustState(t, st); s.Scheme != sc.id {
				t.Fatalf("Provision chose scheme %d, want %d", s.Scheme, sc.id)
			}
			backendtest.RunSecret(t, pin, func(t *testing.T) backend.Backend {
				return newTestBackendOpts(t, Options{TokenLabel: label, Scheme: sc.name}, nil)
			})
		})
	}
}
