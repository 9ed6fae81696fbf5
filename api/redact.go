package api

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The bodies that hold a credential print none of it, whatever the verb
// (internal/redact): an account creation holds an invite code, a token
// answer a bearer token.

func (CreateAccount) Format(f fmt.State, _ rune) { redact.Format(f, "api.CreateAccount") }
func (Token) Format(f fmt.State, _ rune)         { redact.Format(f, "api.Token") }
