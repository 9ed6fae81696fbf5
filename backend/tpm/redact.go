package tpm

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// Types that hold auth values print none of them, whatever the verb
// (internal/redact).

func (Options) Format(f fmt.State, _ rune)  { redact.Format(f, "tpm.Options") }
func (Backend) Format(f fmt.State, _ rune)  { redact.Format(f, "tpm.Backend") }
func (*session) Format(f fmt.State, _ rune) { redact.Format(f, "tpm.session") }
func (signer) Format(f fmt.State, _ rune)   { redact.Format(f, "tpm.bindingKey") }
