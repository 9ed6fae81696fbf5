package simulated

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// The simulated hardware's keys print nothing of their material, whatever
// the verb (internal/redact).

func (*Device) Format(f fmt.State, _ rune) { redact.Format(f, "simulated.Device") }
func (key) Format(f fmt.State, _ rune)     { redact.Format(f, "simulated.key") }
