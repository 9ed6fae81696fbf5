package platform

import (
	"testing"

	"github.com/enigm/enigm/internal/redact"
	"github.com/enigm/enigm/internal/testkit"
)

// The derived keys print nothing of themselves with any verb (the session
// holding them is in internal/redact's table).
func TestSecretKeysRedacted(t *testing.T) {
	check, seal := []byte("check-key-0123456789abcdef012345"), []byte("seal-key-0123456789abcdef0123456")
	testkit.NoErr(t, redact.Leak(secretKeys{check: check, seal: seal}, check, seal))
}
