package commandcli

import (
	"testing"

	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/internal/redact"
)

// The demo holds Command's Config by value; it prints no passphrase.
func TestDemoRedacted(t *testing.T) {
	pass := []byte("demo command keystore passphrase")
	if err := redact.Leak(&demo{dir: "/tmp/demo", cfg: command.Config{DataDir: "/tmp/demo/command", KeystorePassphrase: pass}}, pass); err != nil {
		t.Fatal(err)
	}
}
