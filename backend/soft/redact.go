package soft

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The session holds the seal key (in its AEAD); it prints nothing of it,
// whatever the verb (internal/redact).
func (*session) Format(f fmt.State, _ rune) { redact.Format(f, "soft.session") }
