// Command enigm-command is Enigm Command, the server of the Enigm key
// management system: run `enigm-command help` for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/enigm/enigm/internal/app/commandcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := commandcli.Main(ctx, commandcli.OSEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
