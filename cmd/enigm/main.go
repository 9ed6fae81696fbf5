// Command enigm is the Enigm device CLI: a protected keystore with
// policy-gated key use. Run `enigm help` for the commands.
package main

import (
	"context"

	"github.com/enigm/enigm/internal/clikit"

	"github.com/enigm/enigm/internal/app/enigmcli"
)

func main() {
	clikit.RunMain(func(ctx context.Context, args []string) int { return enigmcli.Main(ctx, enigmcli.OSEnv(), args) })
}
