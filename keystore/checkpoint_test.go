package keystore

import (
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"filippo.io/mldsa"

	"github.com/enigm/enigm/lifecycle"
)

func subtreeMsg(name, origin string, ts, start, size uint64) []byte {
	m := append([]byte(tlogSubtreeLabel), byte(len(name)))
	m = append(m, name...)
	m = binary.BigEndian.AppendUint64(m, ts)
	m = append(m, byte(len(origin)))
	m = append(m, origin...)
	m = binary.BigEndian.AppendUint64(m, start)
	m = binary.BigEndian.AppendUint64(m, size)
	return append(m, make([]byte, 32)...)
}

// TestCheckpointKeys: checkpoint keys sign checkpoints of their origin,
// survive a reopen, and refuse every other use.
func TestCheckpointKeys(t *testing.T) {
	f := newFixture(t)
	const origin = "example.org/log"
	root := base64.StdEncoding.EncodeToString(make([]byte, 32))
	text := []byte(origin + "\n5\n" + root + "\n")
	gen := func(alg Algorithm) KeyID {
		info, err := f.s.Generate(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	edID, pqID := gen(AlgCheckpointEd25519), gen(AlgCheckpointMLDSA44)
	f.reopen() // the material comes back from the wrapped records
	signer := func(id KeyID, o string) crypto.Signer {
		ik, err := f.s.Identity(id)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ik.CheckpointSigner(o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ed, pq := signer(edID, origin), signer(pqID, origin)

	sig, err := ed.Sign(nil, text, crypto.Hash(0))
	if err != nil || !ed25519.Verify(ed.Public().(ed25519.PublicKey), text, sig) {
		t.Fatalf("Ed25519 checkpoint signature: %v", err)
	}
	msg := subtreeMsg(origin, origin, 0, 0, 5)
	sig, err = pq.Sign(nil, msg, crypto.Hash(0))
	if err != nil || mldsa.Verify(pq.Public().(*mldsa.PublicKey), msg, sig, nil) != nil {
		t.Fatalf("ML-DSA-44 checkpoint signature: %v", err)
	}

	refused := []struct {
		desc string
		s    crypto.Signer
		msg  []byte
	}{
		{"ed: another origin", ed, []byte("other.org/log\n5\n" + root + "\n")},
		{"ed: extension line", ed, append(append([]byte{}, text...), "ext\n"...)},
		{"ed: leading zero", ed, []byte(origin + "\n05\n" + root + "\n")},
		{"ed: short root", ed, []byte(origin + "\n5\nAAAA\n")},
		{"ed: no final newline", ed, text[:len(text)-1]},
		{"ed: arbitrary bytes", ed, []byte("enigm/v1/auth/token challenge")},
		{"ed: subtree message", ed, msg},
		{"pq: note text", pq, text},
		{"pq: another key name", pq, subtreeMsg("evil", origin, 0, 0, 5)},
		{"pq: another origin", pq, subtreeMsg(origin, "other.org/log", 0, 0, 5)},
		{"pq: a subtree not from 0", pq, subtreeMsg(origin, origin, 0, 2, 5)},
		{"pq: trailing byte", pq, append(append([]byte{}, msg...), 0)},
	}
	for _, r := range refused {
		if _, err := r.s.Sign(nil, r.msg, crypto.Hash(0)); !errors.Is(err, ErrPurpose) {
			t.Errorf("%s: signed (err %v), want ErrPurpose", r.desc, err)
		}
	}
	if _, err := ed.Sign(nil, text, crypto.SHA256); !errors.Is(err, ErrPurpose) {
		t.Errorf("digest signing: %v, want ErrPurpose", err)
	}
	if _, err := pq.Sign(nil, msg, &mldsa.Options{Context: "x"}); !errors.Is(err, ErrPurpose) {
		t.Errorf("ML-DSA context: %v, want ErrPurpose", err)
	}
	for _, id := range []KeyID{edID, pqID} {
		ik, _ := f.s.Identity(id)
		if _, err := ik.Sign(PurposeAuthToken, text); !errors.Is(err, ErrPurpose) {
			t.Errorf("Sign with a purpose: %v, want ErrPurpose", err)
		}
		if _, err := ik.ProvePossession(PurposeEnvelope, text); !errors.Is(err, ErrPurpose) {
			t.Errorf("ProvePossession: %v, want ErrPurpose", err)
		}
		if _, err := ik.ChainSigner(false); err == nil {
			t.Error("ChainSigner over a checkpoint key succeeded")
		}
		if _, err := ik.CheckpointSigner("bad origin"); !errors.Is(err, ErrPurpose) {
			t.Errorf("origin with a space: %v", err)
		}
	}
	// An ordinary identity key is not a checkpoint key.
	hyb := gen(AlgHybrid)
	ik, _ := f.s.Identity(hyb)
	if _, err := ik.CheckpointSigner(origin); !errors.Is(err, ErrPurpose) || !strings.Contains(err.Error(), "not a checkpoint key") {
		t.Errorf("hybrid key as checkpoint signer: %v", err)
	}
	// Locked: no signature.
	if err := f.s.Lock(); err != nil {
		t.Fatal(err)
	}
	if _, err := ed.Sign(nil, text, crypto.Hash(0)); !errors.Is(err, ErrDenied) {
		t.Errorf("locked store signed: %v", err)
	}
}
