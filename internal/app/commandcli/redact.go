package commandcli

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The admin client holds the admin token, and the demo holds Command's
// Config (its keystore passphrase) in a field; they print nothing of
// either, whatever the verb (internal/redact).

func (adminClient) Format(f fmt.State, _ rune) { redact.Format(f, "cli.adminClient") }
func (demo) Format(f fmt.State, _ rune)        { redact.Format(f, "cli.demo") }
