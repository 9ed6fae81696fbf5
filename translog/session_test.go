package translog_test

import (
	"errors"
	"testing"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestSignerSession: WithSession runs both signatures inside one session
// call, passes the session's error on, and refuses a session that did not
// sign; the original Signer is unchanged.
func TestSignerSession(t *testing.T) {
	const origin = "session.enigm.test/log"
	s := translogtest.NewSigner(t, origin)
	c := translog.Checkpoint{Origin: origin, Size: 2}
	calls := 0
	ws := s.WithSession(func(sign func() error) error { calls++; return sign() })
	signed, err := ws.Sign(c)
	if err != nil || calls != 1 {
		t.Fatalf("session sign: %v, %d session calls", err, calls)
	}
	if got, err := translog.VerifyCheckpoint(signed, origin, s.VerifierKeys()); err != nil || got != c {
		t.Fatalf("verify: %+v %v", got, err)
	}
	boom := errors.New("keystore locked")
	if _, err := s.WithSession(func(func() error) error { return boom }).Sign(c); !errors.Is(err, boom) {
		t.Fatalf("a failing session: %v", err)
	}
	if _, err := s.WithSession(func(func() error) error { return nil }).Sign(c); err == nil {
		t.Fatal("a session that did not sign gave a checkpoint")
	}
	if _, err := s.Sign(c); err != nil || calls != 1 {
		t.Fatalf("the original signer: %v, %d session calls", err, calls)
	}
}
