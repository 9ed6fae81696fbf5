package enigmcli

import "github.com/enigm/enigm/internal/clikit"

// The in-process demo runs Enigm Command, so it lives in enigm-command: the
// device binary does not contain the server (internal/archtest). `enigm
// demo` stays as a pointer for people following older instructions.
func init() {
	register(func(c *Ctx) *clikit.Command {
		return &clikit.Command{Path: "demo", Summary: "moved to `enigm-command demo` (enigm does not contain the server)",
			Help: `The walk-through of the key management model starts Enigm Command in-process,
and the device binary enigm does not contain the server. Run it from the
server binary instead; it exits 2 here.

example:
  go run ./cmd/enigm-command demo`,
			Args: clikit.AnyArgs, Run: c.do(func(*Ctx) error {
				return Usagef("moved: run `enigm-command demo` (it starts Enigm Command in-process, which enigm does not contain)")
			})}
	})
}
