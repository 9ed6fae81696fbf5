package mobile

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The keystore handle holds the store (its wrapping keys while unlocked);
// it prints nothing of it, whatever the verb (internal/redact).
func (Keystore) Format(f fmt.State, _ rune) { redact.Format(f, "mobile.Keystore") }
