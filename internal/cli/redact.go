package cli

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The demo holds Command's Config (its keystore passphrase) in a field;
// it prints nothing of it, whatever the verb (internal/redact).
func (demo) Format(f fmt.State, _ rune) { redact.Format(f, "cli.demo") }
