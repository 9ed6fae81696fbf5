package cli

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The admin client holds the admin token; it prints nothing of it,
// whatever the verb (internal/redact).
func (adminClient) Format(f fmt.State, _ rune) { redact.Format(f, "cli.adminClient") }
