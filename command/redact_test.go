package command

import (
	"testing"

	"github.com/enigm/enigm/internal/redact"
	"github.com/enigm/enigm/internal/testkit"
)

// The organisation keys' handle points to the Config and its passphrase;
// it prints neither (Config, Server and the rest are in internal/redact's
// table).
func TestOrgKeysRedacted(t *testing.T) {
	pass := []byte("command-keystore-passphrase-0123")
	testkit.NoErr(t, redact.Leak(newOrgKeys(&Config{DataDir: "/srv/enigm", KeystorePassphrase: pass}), pass))
	invite := "inv0123456789abcdefghijklmnopqrstu"
	testkit.NoErr(t, redact.Leak(&createAccountRequest{Name: "alice", Invite: invite}, []byte(invite)))
}
