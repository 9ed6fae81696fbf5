package load

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// Types that hold a device's private key, the run's recovery key or a
// bearer token print none of them, whatever the verb (internal/redact).

func (enrollment) Format(f fmt.State, _ rune) { redact.Format(f, "load.enrollment") }
func (device) Format(f fmt.State, _ rune)     { redact.Format(f, "load.device") }
func (run) Format(f fmt.State, _ rune)        { redact.Format(f, "load.run") }
