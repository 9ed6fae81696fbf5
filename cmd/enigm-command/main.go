// Command enigm-command is Enigm Command, the server of the Enigm key
// management system: run `enigm-command help` for its commands.
package main

import (
	"context"
	"os"

	"github.com/enigm/enigm/internal/clikit"

	"github.com/enigm/enigm/internal/app/commandcli"
)

func main() {
	// SIGINT ends the run with exit code 130, SIGTERM as the command
	// decides (serve: a graceful stop, exit 0).
	ctx, stop := clikit.SignalContext(context.Background())
	code := commandcli.Main(ctx, commandcli.OSEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
