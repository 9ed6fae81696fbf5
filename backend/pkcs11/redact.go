//go:build cgo

package pkcs11

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The logins of a module hold PIN verifiers; they print none of them,
// whatever the verb (internal/redact).

func (*module) Format(f fmt.State, _ rune) { redact.Format(f, "pkcs11.module") }
func (login) Format(f fmt.State, _ rune)   { redact.Format(f, "pkcs11.login") }
