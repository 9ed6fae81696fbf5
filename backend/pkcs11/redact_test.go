//go:build cgo

package pkcs11

import (
	"testing"

	"github.com/enigm/enigm/internal/redact"
)

// A login's PIN verifier prints with no verb, nor through its module.
func TestLoginsRedacted(t *testing.T) {
	l := &login{refs: 1}
	copy(l.verifier[:], "pin-verifier-0123456789abcdef012")
	m := &module{path: "/usr/lib/softhsm/libsofthsm2.so", logins: map[string]*login{"token": l}}
	for _, v := range []any{l, m} {
		if err := redact.Leak(v, l.verifier[:]); err != nil {
			t.Error(err)
		}
	}
}
