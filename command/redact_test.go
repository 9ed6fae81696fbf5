package command

import (
	"testing"

	"github.com/enigm/enigm/internal/redact"
	"github.com/enigm/enigm/internal/testkit"
)

// The organisation keys' handle points to the Config and its passphrase;
// it prints neither (Config, Server and the rest are in internal/redact's
// table; the API bodies in api's TestBodiesRedacted).
func TestOrgKeysRedacted(t *testing.T) {
	pass := []byte("command-keystore-passphrase-0123")
	testkit.NoErr(t, redact.Leak(newOrgKeys(&Config{DataDir: "/srv/enigm", KeystorePassphrase: pass}), pass))
}
