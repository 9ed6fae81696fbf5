package translog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testenv"
	"github.com/enigm/enigm/translog"
)

// TorchwoodToolchain is the Go toolchain the torchwood checker is built
// with: filippo.io/torchwood v0.10.0, the first release with tlog-proof
// (VerifyProof) and tlog-policy (ParsePolicy) support, needs Go 1.27,
// newer than the module's. The checker is its own module in
// testdata/torchwood, so Enigm's go.mod neither requires torchwood nor a
// newer Go; the go command fetches this toolchain like a module.
const TorchwoodToolchain = "go1.27.3"

// buildTorchwood builds testdata/torchwood and returns the binary. When
// it cannot be built (no go command, no module proxy) the test is
// skipped, or fails under ENIGM_REQUIRE_ALL=1.
func buildTorchwood(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go command (to build the torchwood checker)", err)
	}
	src, err := filepath.Abs(filepath.Join("testdata", "torchwood"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "torchwood")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN="+TorchwoodToolchain, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		testenv.Missing(t, "the torchwood checker (filippo.io/torchwood v0.10.0 with "+TorchwoodToolchain+")", errors.New(err.Error()+": "+string(out)))
	}
	return bin
}

// TestProofTorchwood: our tlog-proofs are checked by
// filippo.io/torchwood's VerifyProof under tlog-policy files parsed by
// its ParsePolicy — a tlog-proof and tlog-policy implementation no one
// here wrote. It accepts our genuine proofs (under the Ed25519 log key,
// the ML-DSA-44 log key, both, and with a quorum of an Ed25519 and an
// ML-DSA-44 witness), and refuses every attacked one that we refuse.
func TestProofTorchwood(t *testing.T) {
	bin := buildTorchwood(t)
	g := newGoldenWorld(t)
	keys := g.signer.VerifierKeys()
	dir := t.TempDir()
	logEd, logPQ := "log "+keys[0]+"\n", "log "+keys[1]+"\n"
	witnesses := "witness w1 " + g.w1.vkey() + "\nwitness w2 " + g.w2.vkey() + "\n"
	golden := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "tlogproof", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cosigned := g.proof(t, 617, nil, g.w1, g.w2)
	mutate := func(f func(p *translog.Proof)) []byte {
		p := *cosigned
		p.Hashes = append([][]byte(nil), cosigned.Hashes...)
		p.Checkpoint = bytes.Clone(cosigned.Checkpoint)
		f(&p)
		return mustBytes(t, &p)
	}
	flipLastSig := func(p *translog.Proof) {
		cp := p.Checkpoint
		i := len(cp) - 3 // inside the last signature's base64, before "=\n" or the final characters
		for cp[i] == '=' {
			i--
		}
		if cp[i] == 'A' {
			cp[i] = 'B'
		} else {
			cp[i] = 'A'
		}
	}
	cases := []struct {
		desc   string
		policy string
		proof  []byte
		leaf   []byte
		ok     bool
	}{
		{"leaf 0 under the Ed25519 log key", logEd + "quorum none\n", golden("leaf-0.tlog-proof"), leaf(0), true},
		{"leaf 0 under the ML-DSA-44 log key", logPQ + "quorum none\n", golden("leaf-0.tlog-proof"), leaf(0), true},
		{"leaf 0 under both log keys", logEd + logPQ + "quorum none\n", golden("leaf-0.tlog-proof"), leaf(0), true},
		{"leaf 617 with the link in extra", logEd + logPQ + "quorum none\n", golden("leaf-617-extra.tlog-proof"), leaf(617), true},
		{"leaf 999 with both witnesses of a quorum of two", logEd + logPQ + witnesses + "group both all w1 w2\nquorum both\n", golden("leaf-999-cosigned.tlog-proof"), leaf(999), true},
		{"leaf 617 with both witnesses", logEd + witnesses + "group both all w1 w2\nquorum both\n", mustBytes(t, cosigned), leaf(617), true},
		{"another leaf", logEd + "quorum none\n", mustBytes(t, cosigned), leaf(616), false},
		{"the index of the next leaf", logEd + "quorum none\n", mutate(func(p *translog.Proof) { p.Index++ }), leaf(617), false},
		{"a truncated path", logEd + "quorum none\n", mutate(func(p *translog.Proof) { p.Hashes = p.Hashes[:len(p.Hashes)-1] }), leaf(617), false},
		{"a checkpoint signed by another log", logEd + "quorum none\n", func() []byte {
			p, err := logOf(t, proofSigner(t, goldenOrigin, "another log"), 1000).Proof(context.Background(), 617, nil)
			if err != nil {
				t.Fatal(err)
			}
			return mustBytes(t, p)
		}(), leaf(617), false},
		{"an ML-DSA-44 cosignature that does not verify", logEd + witnesses + "group both all w1 w2\nquorum both\n", mutate(flipLastSig), leaf(617), false},
		{"one witness where the quorum asks for two", logEd + witnesses + "group both all w1 w2\nquorum both\n", mustBytes(t, g.proof(t, 617, nil, g.w1)), leaf(617), false},
	}
	for i, c := range cases {
		pf, lf, pol := filepath.Join(dir, "p"), filepath.Join(dir, "l"), filepath.Join(dir, "policy")
		for f, b := range map[string][]byte{pf: c.proof, lf: c.leaf, pol: []byte(c.policy)} {
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(bin, pol, pf, lf).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
			t.Fatalf("case %d %s: torchwood: %v: %s", i, c.desc, err, out)
		}
		theirs := err == nil && strings.TrimSpace(string(out)) == "verified"
		if theirs != c.ok {
			t.Errorf("%s: torchwood says %q, want ok=%v", c.desc, bytes.TrimSpace(out), c.ok)
		}
		ours := ourVerdict(t, c.policy, c.proof, c.leaf, keys, g)
		if (ours == nil) != c.ok {
			t.Errorf("%s: we say %v, want ok=%v", c.desc, ours, c.ok)
		}
		t.Logf("%s: torchwood %q; we %v", c.desc, bytes.TrimSpace(out), ours)
	}
}

// TestProofVectorsTorchwood: torchwood gives every committed vector
// (testdata/tlogproof/vectors) our verdict: it verifies the genuine
// proof and refuses each attacked one, under a tlog-policy with the
// vector's log keys and a group of its witnesses with its quorum. Vectors
// whose keys are refused before any verification (bad_key) say nothing
// about torchwood's checks and are left out.
func TestProofVectorsTorchwood(t *testing.T) {
	bin := buildTorchwood(t)
	files, err := filepath.Glob(filepath.Join("testdata", "tlogproof", "vectors", "*.json"))
	if err != nil || len(files) < 20 {
		t.Fatalf("%d vectors (%v)", len(files), err)
	}
	dir := t.TempDir()
	for _, f := range files {
		v := readVector(t, f)
		if v.WantErr == "bad_key" {
			continue
		}
		var policy strings.Builder
		for _, k := range v.LogKeys {
			policy.WriteString("log " + k + "\n")
		}
		if len(v.WitnessKeys) > 0 {
			names := ""
			for i, k := range v.WitnessKeys {
				fmt.Fprintf(&policy, "witness w%d %s\n", i, k)
				names += fmt.Sprintf(" w%d", i)
			}
			fmt.Fprintf(&policy, "group q %d%s\nquorum q\n", v.Quorum, names)
		} else {
			policy.WriteString("quorum none\n")
		}
		pf, lf, pol := filepath.Join(dir, "p"), filepath.Join(dir, "l"), filepath.Join(dir, "policy")
		for f, b := range map[string][]byte{pf: []byte(v.Proof), lf: v.Leaf, pol: []byte(policy.String())} {
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, err := exec.Command(bin, pol, pf, lf).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
			t.Fatalf("%s: torchwood: %v: %s", f, err, out)
		}
		if ok := err == nil; ok != (v.WantErr == "") {
			t.Errorf("%s (%s): torchwood says %q, we say %q", f, v.Desc, bytes.TrimSpace(out), v.WantErr)
		}
		t.Logf("%s: torchwood %q, want_err %q", v.Desc, bytes.TrimSpace(out), v.WantErr)
	}
}

// ourVerdict verifies proof as the case's policy asks: the log keys it
// names, and a quorum of all its witnesses when it has a group.
func ourVerdict(t *testing.T, policy string, proof, leaf []byte, keys []string, g *goldenWorld) error {
	p, err := translog.ParseProof(proof)
	if err != nil {
		return err
	}
	var lk []string
	for _, k := range keys {
		if strings.Contains(policy, "log "+k+"\n") {
			lk = append(lk, k)
		}
	}
	var q *translog.WitnessQuorum
	if strings.Contains(policy, "quorum both") {
		q = g.quorum(2)
	}
	_, err = p.Verify(leaf, goldenOrigin, lk, q)
	return err
}
