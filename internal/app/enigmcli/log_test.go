package enigmcli

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/mldsa"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/enigm/enigm/command/commandtest"
	"github.com/enigm/enigm/internal/clikit/scripttest"
	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestLogScripts runs the transcripts of `enigm log` in
// testdata/logscript against an in-process Command that publishes a
// transparency log (the plain `server` of TestScripts publishes none).
func TestLogScripts(t *testing.T) {
	cmds := logCmds()
	// logserver starts Command with a log (origin cli.enigm.test/log,
	// integrating every 20 ms), points $ENIGM_SERVER at it, writes the
	// log's keys to log.keys (as `enigm-command log public-key` prints
	// them) and another log's keys of the same origin to other.keys, and
	// sets $WITNESS_KEY to a witness cosignature key that signs nothing.
	cmds["logserver"] = func(ts *testscript.TestScript, neg bool, args []string) {
		startLogServer(ts, newLogSigner(ts, "cli.enigm.test/log"), nil)
		other := newLogSigner(ts, "cli.enigm.test/log")
		ts.Check(os.WriteFile(ts.MkAbs("other.keys"), []byte(strings.Join(other.VerifierKeys(), "\n")+"\n"), 0o600))
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		ts.Check(err)
		const name = "witness.cli.enigm.test"
		h := sha256.Sum256(append([]byte(name+"\n\x04"), pub...))
		ts.Setenv("WITNESS_KEY", fmt.Sprintf("%s+%08x+%s", name, binary.BigEndian.Uint32(h[:4]), base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...))))
	}
	runLogScripts(t, "testdata/logscript", cmds)
}

// TestLogProofWitnessed runs testdata/logwitness: Command submits its
// checkpoints to a real witness process (transparency-dev's omniwitness,
// translogtest.StartWitness), `enigm log proof` exports its cosignature
// with the proof, and `enigm log verify-proof` requires it.
func TestLogProofWitnessed(t *testing.T) {
	const origin = "cli.enigm.test/witnessed"
	signer := translogtest.NewSigner(t, origin)
	rw := translogtest.StartWitness(t, "witness.cli.enigm.test/real", origin, signer.VerifierKeys()[0])
	w, err := translog.NewWitness(rw.URL, rw.Keys[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	cmds := logCmds()
	// logserver starts Command with the log the witness knows, submitting
	// every checkpoint to it; $WITNESS_ED and $WITNESS_PQ are the
	// witness's two cosignature keys (Ed25519 and ML-DSA-44; it signs with
	// both, Command asks for and serves the ML-DSA-44 one).
	cmds["logserver"] = func(ts *testscript.TestScript, neg bool, args []string) {
		startLogServer(ts, signer, []*translog.Witness{w})
		ts.Setenv("WITNESS_ED", rw.Keys[0])
		ts.Setenv("WITNESS_PQ", rw.Keys[1])
	}
	runLogScripts(t, "testdata/logwitness", cmds)
}

// startLogServer starts Command publishing signer's log (integrating
// every 20 ms, submitting to witnesses), points $ENIGM_SERVER at it,
// writes the log's keys to log.keys and sets $LOG_ED and $LOG_PQ.
func startLogServer(ts *testscript.TestScript, signer *translog.Signer, witnesses []*translog.Witness) {
	cfg := scriptCommandConfig(ts)
	cfg.LogSigner, cfg.LogInterval, cfg.LogWitnesses = signer, 20*time.Millisecond, witnesses
	commandtest.ServeScript(ts, cfg)
	ts.Check(os.WriteFile(ts.MkAbs("log.keys"), []byte(strings.Join(signer.VerifierKeys(), "\n")+"\n"), 0o600))
	ts.Setenv("LOG_ED", signer.VerifierKeys()[0])
	ts.Setenv("LOG_PQ", signer.VerifierKeys()[1])
}

// logCmds are the transcript commands of the log scripts: scripttest's,
// edit and extra.
func logCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	cmds := scripttest.Cmds()
	// edit IN OUT OLD NEW writes IN to OUT with the first OLD (\n for a
	// newline) replaced by NEW; NEW "-" deletes the line OLD starts.
	cmds["edit"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 4 {
			ts.Fatalf("usage: edit IN OUT OLD NEW")
		}
		b := ts.ReadFile(args[0])
		unesc := func(s string) string { return strings.ReplaceAll(s, `\n`, "\n") }
		old := unesc(args[2])
		i := strings.Index(b, old)
		if i < 0 {
			ts.Fatalf("edit: no %q in %s", old, args[0])
		}
		if args[3] == "-" {
			j := strings.IndexByte(b[i:], '\n')
			b = b[:i] + b[i+j+1:]
		} else {
			b = b[:i] + unesc(args[3]) + b[i+len(old):]
		}
		ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(b), 0o600))
	}
	// extra IN OUT writes the extra data of the tlog-proof IN (the link
	// Enigm puts there) to OUT.
	cmds["extra"] = func(ts *testscript.TestScript, neg bool, args []string) {
		p, err := translog.ParseProof([]byte(ts.ReadFile(args[0])))
		ts.Check(err)
		ts.Check(os.WriteFile(ts.MkAbs(args[1]), p.Extra, 0o600))
	}
	// flipsig IN OUT NAME writes IN to OUT with one bit flipped in the
	// signature (past its key ID and timestamp) of NAME's signature line.
	cmds["flipsig"] = func(ts *testscript.TestScript, neg bool, args []string) {
		if len(args) != 3 {
			ts.Fatalf("usage: flipsig IN OUT NAME")
		}
		lines := strings.Split(ts.ReadFile(args[0]), "\n")
		found := false
		for i, l := range lines {
			if b64, ok := strings.CutPrefix(l, "— "+args[2]+" "); ok {
				raw, err := base64.StdEncoding.DecodeString(b64)
				ts.Check(err)
				raw[len(raw)/2] ^= 1
				lines[i] = "— " + args[2] + " " + base64.StdEncoding.EncodeToString(raw)
				found = true
			}
		}
		if !found {
			ts.Fatalf("flipsig: no signature line of %s in %s", args[2], args[0])
		}
		ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(strings.Join(lines, "\n")), 0o600))
	}
	return cmds
}

func runLogScripts(t *testing.T, dir string, cmds map[string]func(ts *testscript.TestScript, neg bool, args []string)) {
	testscript.Run(t, testscript.Params{
		Dir: dir, Cmds: cmds, RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("ENIGM_HOME", filepath.Join(e.WorkDir, "home"))
			e.Setenv("ENIGM_PASSPHRASE", "pw one")
			return nil
		},
	})
}

func newLogSigner(ts *testscript.TestScript, origin string) *translog.Signer {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	ts.Check(err)
	pq, err := mldsa.GenerateKey(mldsa.MLDSA44())
	ts.Check(err)
	s, err := translog.NewSigner(origin, ed, pq)
	ts.Check(err)
	return s
}
