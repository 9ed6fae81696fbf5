//go:build !cgo

package pkcs11

import (
	"errors"
	"strings"
	"testing"

	"github.com/enigm/enigm/backend"
)

func TestNoCgo(t *testing.T) {
	b, err := New(Options{})
	if b != nil || !errors.Is(err, backend.ErrUnavailable) || !strings.Contains(err.Error(), "built without cgo") {
		t.Fatalf("New = %v, %v; want nil and a 'built without cgo' ErrUnavailable", b, err)
	}
}
