package device

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// Types that hold a recovery code, an invite code or a pairing code print none,
// whatever the verb (internal/redact). The CLI shows those codes through
// their fields, once. The agent holds the keystore (its wrapping keys
// while unlocked) and the client (its bearer token).

func (Agent) Format(f fmt.State, _ rune)          { redact.Format(f, "device.Agent") }
func (InitOptions) Format(f fmt.State, _ rune)    { redact.Format(f, "device.InitOptions") }
func (RecoverOptions) Format(f fmt.State, _ rune) { redact.Format(f, "device.RecoverOptions") }
func (EnrollResult) Format(f fmt.State, _ rune)   { redact.Format(f, "device.EnrollResult") }
func (Pending) Format(f fmt.State, _ rune)        { redact.Format(f, "device.Pending") }
func (pending) Format(f fmt.State, _ rune)        { redact.Format(f, "device.pending") }
