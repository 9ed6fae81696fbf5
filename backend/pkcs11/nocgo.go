//go:build !cgo

package pkcs11

import (
	"context"
	"fmt"

	"github.com/enigm/enigm/backend"
)

// errNoCgo is returned by everything in a build without cgo.
var errNoCgo = fmt.Errorf("%w: built without cgo: PKCS#11 unavailable (rebuild with CGO_ENABLED=1 and a C compiler)", backend.ErrUnavailable)

// Backend is the PKCS#11 backend; in this build (no cgo) it cannot exist.
type Backend struct{}

var _ backend.Backend = (*Backend)(nil)

// New returns an error: PKCS#11 needs cgo.
func New(Options) (*Backend, error) { return nil, errNoCgo }

// Capabilities reports what the backend would offer.
func (*Backend) Capabilities() backend.Capabilities { return capabilities() }

// Provision fails: built without cgo.
func (*Backend) Provision(context.Context, []byte) ([]byte, error) { return nil, errNoCgo }

// Open fails: built without cgo.
func (*Backend) Open(context.Context, []byte, []byte) (backend.Session, error) {
	return nil, errNoCgo
}

// Destroy fails: built without cgo.
func (*Backend) Destroy(context.Context, []byte) error { return errNoCgo }

// Purge fails: built without cgo.
func (*Backend) Purge(context.Context, []byte, []byte) error { return errNoCgo }
