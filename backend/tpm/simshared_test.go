package tpm

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/enigm/enigm/backend"
)

// simConn is a connection to the shared simulator; Close leaves it running.
type simConn struct{}

func (simConn) Send(cmd []byte) ([]byte, error) { return simSend(cmd) }

func (simConn) Close() error { return nil }

func openSim() (transport.TPMCloser, error) { return simConn{}, nil }

// newSim returns a backend on a fresh simulator.
func newSim(t testing.TB, opts Options) *Backend {
	t.Helper()
	startSim(t)
	opts.Open = openSim
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// simStore provisions a store on a fresh simulator and opens it for the
// rest of the test: the backend, the store's state and its session.
func simStore(t testing.TB, opts Options) (*Backend, []byte, *session) {
	t.Helper()
	b := newSim(t, opts)
	st := mustProvision(t, b)
	return b, st, mustOpen(t, b, st)
}

// tracked destroys every store it provisioned when the test ends, so a
// real TPM is left as it was found.
type tracked struct {
	*Backend
	mu     sync.Mutex
	states [][]byte
}

func track(t testing.TB, b *Backend) *tracked {
	tb := &tracked{Backend: b}
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, st := range tb.states {
			if err := b.Destroy(context.Background(), st); err != nil {
				t.Errorf("cleanup Destroy: %v", err)
			}
		}
	})
	return tb
}

func (tb *tracked) Provision(ctx context.Context, secret []byte) ([]byte, error) {
	st, err := tb.Backend.Provision(ctx, secret)
	if err == nil {
		tb.mu.Lock()
		tb.states = append(tb.states, st)
		tb.mu.Unlock()
	}
	return st, err
}

var _ backend.Backend = (*tracked)(nil)
