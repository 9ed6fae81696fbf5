package platform

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// Types that hold the derived secret keys print none of them, whatever the
// verb (internal/redact).

func (*session) Format(f fmt.State, _ rune)   { redact.Format(f, "platform.session") }
func (secretKeys) Format(f fmt.State, _ rune) { redact.Format(f, "platform.secretKeys") }
