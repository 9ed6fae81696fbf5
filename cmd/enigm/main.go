// Command enigm is the Enigm device CLI: a protected keystore with
// policy-gated key use. Run `enigm help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/enigm/enigm/internal/app/enigmcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := enigmcli.Main(ctx, enigmcli.OSEnv(), os.Args[1:])
	stop()
	os.Exit(code)
}
