// Command enigm-command is Enigm Command, the server of the Enigm key
// management system: run `enigm-command help` for its commands.
package main

import (
	"context"

	"github.com/enigm/enigm/internal/clikit"

	"github.com/enigm/enigm/internal/app/commandcli"
)

func main() {
	clikit.RunMain(func(ctx context.Context, args []string) int { return commandcli.Main(ctx, commandcli.OSEnv(), args) })
}
