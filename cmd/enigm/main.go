// Command enigm is the Enigm device CLI: a protected keystore with
// policy-gated key use. Run `enigm help` for the commands.
package main

import (
	"context"
	"os"

	"github.com/enigm/enigm/internal/clikit"

	"github.com/enigm/enigm/internal/app/enigmcli"
)

func main() {
	// SIGINT ends the run with exit code 130, SIGTERM as the command
	// decides (serve: a graceful stop, exit 0).
	ctx, stop := clikit.SignalContext(context.Background())
	code := enigmcli.Main(ctx, enigmcli.OSEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
