//go:build !cgo

package pkcs11

import (
	"errors"
	"strings"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/internal/testenv"
)

func TestNoCgo(t *testing.T) {
	b, err := New(Options{})
	if b != nil || !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("New = %v, %v; want nil and a 'built without cgo' ErrUnavailable", b, err)
	}
}

// Without cgo the SoftHSM2 tests do not exist; under ENIGM_REQUIRE_ALL=1
// that must fail rather than pass quietly.
func TestSoftHSMNeedsCgo(t *testing.T) {
	testenv.Missing(t, "cgo (for the PKCS#11 backend's SoftHSM2 tests)", errNoCgo)
}
