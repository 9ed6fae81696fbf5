package command

import (
	"fmt"

	"github.com/enigm/enigm/internal/redact"
)

// Types that hold a passphrase, a database URL (which may carry a
// password), an admin token or an invite code print none of them, whatever
// the verb (internal/redact). Server and orgKeys hold a Config (Server also
// the challenge MAC key). The API's bodies that hold one (api.CreateAccount,
// api.Token) redact themselves.

func (Config) Format(f fmt.State, _ rune)     { redact.Format(f, "command.Config") }
func (*Server) Format(f fmt.State, _ rune)    { redact.Format(f, "command.Server") }
func (OrgCreated) Format(f fmt.State, _ rune) { redact.Format(f, "command.OrgCreated") }
func (Invited) Format(f fmt.State, _ rune)    { redact.Format(f, "command.Invited") }
func (*orgKeys) Format(f fmt.State, _ rune)   { redact.Format(f, "command.orgKeys") }
