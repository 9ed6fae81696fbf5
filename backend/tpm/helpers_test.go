package tpm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/backendtest"
	"github.com/enigm/enigm/backend/tpm/internal/format"
	"github.com/enigm/enigm/internal/wire"
)

var (
	ctx    = context.Background()
	secret = []byte("correct horse battery staple")
	wrong  = []byte("correct horse battery stapler")
	key32  = bytes.Repeat([]byte{0x42}, 32)
)

func mustProvision(t testing.TB, b backend.Backend) []byte {
	t.Helper()
	return backendtest.Provision(t, b, secret)
}

func mustOpen(t testing.TB, b backend.Backend, st []byte) *session {
	t.Helper()
	return backendtest.Open(t, b, st, secret).(*session)
}

func mustSeal(t testing.TB, s backend.Session, label string, pt []byte) []byte {
	t.Helper()
	sealed, err := s.Seal(ctx, label, pt)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return sealed
}

// lockoutCounter reads the TPM's dictionary-attack failure counter.
func lockoutCounter(t *testing.T) uint32 {
	t.Helper()
	rsp, err := (tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTLockoutCounter), PropertyCount: 1}).Execute(simConn{})
	if err != nil {
		t.Fatal(err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil || len(props.TPMProperty) == 0 || props.TPMProperty[0].Property != tpm2.TPMPTLockoutCounter {
		t.Fatalf("lockout counter: %v", err)
	}
	return props.TPMProperty[0].Value
}

// persistentCount counts persistent objects in the backend handle range.
func persistentCount(t *testing.T) int {
	t.Helper()
	return len(listPersistent(simConn{}, format.MinPersistent, format.MaxPersistent-format.MinPersistent+1))
}

// extendPCR extends a SHA-256 PCR with a measurement.
func extendPCR(t *testing.T, pcr int, data string) {
	t.Helper()
	d := sha256Sum([]byte(data))
	_, err := (tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d}}},
	}).Execute(simConn{})
	if err != nil {
		t.Fatalf("PCR_Extend(%d): %v", pcr, err)
	}
}

// reencode decodes b with parse, applies f and re-encodes it canonically.
func reencode[T any](t testing.TB, b []byte, parse func([]byte) (*T, error), f func(*T)) []byte {
	t.Helper()
	v, err := parse(b)
	if err != nil {
		t.Fatal(err)
	}
	f(v)
	out, err := wire.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// editState decodes a state, applies f and re-encodes it canonically.
func editState(t *testing.T, st []byte, f func(*format.State)) []byte {
	t.Helper()
	return reencode(t, st, format.ParseState, f)
}

// editObject does the same to a key object blob, without judging it.
func editObject(t *testing.T, blob []byte, f func(*format.Object)) []byte {
	t.Helper()
	return reencode(t, blob, func(b []byte) (*format.Object, error) {
		var o format.Object
		return &o, wire.Unmarshal(b, &o, 0)
	}, f)
}

func sha256Sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
