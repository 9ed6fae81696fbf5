package e2e

import (
	"crypto/hpke"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
)

// The attacker's tools, built from the public packages the way anyone
// could: devices with raw keys (no keystore), the chain as a device
// verifies it, the recovery key from a leaked code, and recovery requests.

// rawDevice is a device with raw keys and a public record.
type rawDevice struct {
	key *hybrid.PrivateKey
	rec chain.Device
}

func newRawDevice(t *testing.T, name string) *rawDevice {
	t.Helper()
	seed := make([]byte, hybrid.SeedSize)
	rand.Read(seed)
	k, err := hybrid.NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	kem, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	d := &rawDevice{key: k, rec: chain.Device{Name: name, Identity: k.Public(), KEM: kem.PublicKey().Bytes(), Level: chain.LevelSoftware}}
	rand.Read(d.rec.ID[:])
	return d
}

// verifiedChain fetches an account's chain and verifies it as a device
// meeting the account for the first time would.
func verifiedChain(t *testing.T, h *harness, acct chain.AccountID) *chain.State {
	t.Helper()
	cl, err := client.New(h.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	view, err := cl.Chain(t.Context(), acct, -1)
	if err != nil {
		t.Fatal(err)
	}
	links, err := chain.ParseChain(view.Links)
	if err != nil {
		t.Fatal(err)
	}
	st, err := chain.VerifyChain(nil, links, time.Now())
	if err != nil {
		t.Fatalf("the chain of %s does not verify: %v", acct, err)
	}
	return st
}

// leakedRecoveryKey derives the recovery key from a code file that leaked.
func leakedRecoveryKey(t *testing.T, file string) *hybrid.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := chain.ParseRecoveryCode(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Destroy()
	k, err := rc.Key()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// recoveryRequest builds a recovery_request for a fresh raw device, dated
// at, signed with the recovery key rk and the device's key.
func recoveryRequest(t *testing.T, st *chain.State, at time.Time, rk *hybrid.PrivateKey, name string) *chain.Link {
	t.Helper()
	return recoveryRequestFor(t, st, at, rk, newRawDevice(t, name))
}

// recoveryRequestFor is recoveryRequest for the raw device dev (whose
// key then signs the recover link).
func recoveryRequestFor(t *testing.T, st *chain.State, at time.Time, rk *hybrid.PrivateKey, dev *rawDevice) *chain.Link {
	t.Helper()
	d, err := chain.NewDraft(st, at, &chain.RecoveryRequest{Device: dev.rec})
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, d.Sign(chain.RoleRecovery, rk))
	testkit.NoErr(t, d.Sign(chain.RoleSubject, dev.key))
	l, err := d.Link()
	if err != nil {
		t.Fatal(err)
	}
	return l
}
