package device

import (
	"testing"

	"github.com/enigm/enigm/internal/redact"
)

// The persisted pending request prints no pairing code with any verb, nor
// through the config that holds it (the exported types are in
// internal/redact's table).
func TestPendingRedacted(t *testing.T) {
	code := "7Q2K-9MXC-3HRT-V0PA"
	p := &pending{Kind: "enroll", RequestID: "r", PairingCode: code}
	for _, v := range []any{p, &config{Pending: p}} {
		if err := redact.Leak(v, []byte(code)); err != nil {
			t.Error(err)
		}
	}
}
