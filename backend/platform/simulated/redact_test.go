package simulated

import (
	"testing"

	"github.com/enigm/enigm/backend/platform/bridge"
	"github.com/enigm/enigm/internal/redact"
)

// The simulated hardware's keys print no private scalar with any verb (an
// unexported *ecdh.PrivateKey field shows its bytes under %s), nor through
// the device.
func TestKeysRedacted(t *testing.T) {
	d := New(SecureEnclave())
	if _, err := d.GenerateKey(&bridge.KeySpec{Alias: "k", Algorithm: bridge.AlgP256, Sign: true, Agree: true}); err != nil {
		t.Fatal(err)
	}
	k := d.keys["k"]
	scalar, err := k.ec.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{k, d} {
		if err := redact.Leak(v, scalar); err != nil {
			t.Error(err)
		}
	}
}
