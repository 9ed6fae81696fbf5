package translogtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/mldsa"

	"github.com/enigm/enigm/internal/testenv"
)

// WitnessModule is transparency-dev's witness (omniwitness), at the
// version the tests run with go run: a real, independent tlog-witness
// over SQLite (--db_file), signing with the keys in --private_key_path
// files, knowing the logs of --additional_logs (YAML: Origin, PublicKey,
// URL), installed with go install into the test's directory. It is started with no feeder, distributor, bastion or network
// configuration, so it makes no outbound connection.
const WitnessModule = "github.com/transparency-dev/witness/cmd/omniwitness@v0.0.0-20260720115447-2e1c6971d19e"

// RunningWitness is a witness process started for a test.
type RunningWitness struct {
	URL string // submission prefix
	// Keys are its cosignature verifier keys: Ed25519 cosignature/v1
	// (type 0x04), then ML-DSA-44 (type 0x06).
	Keys []string
	// Output returns what the process printed so far.
	Output func() string
}

// StartWitness starts a witness named name that knows one log, origin,
// verified with logKey (a log verifier key: Ed25519 0x01 or ML-DSA-44
// 0x06). It is stopped when t ends. When it cannot be built or started the
// test is skipped, or fails under ENIGM_REQUIRE_ALL=1.
func StartWitness(t testing.TB, name, origin, logKey string) *RunningWitness {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go command (to run the witness)", err)
	}
	dir := t.TempDir()
	// Keys: note signing keys, PRIVATE+KEY+name+id+base64(type || seed).
	edSeed := make([]byte, ed25519.SeedSize)
	pqSeed := make([]byte, mldsa.PrivateKeySize)
	rand.Read(edSeed)
	rand.Read(pqSeed)
	edPub := ed25519.NewKeyFromSeed(edSeed).Public().(ed25519.PublicKey)
	pqKey, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), pqSeed)
	if err != nil {
		t.Fatal(err)
	}
	pqPub := pqKey.PublicKey().Bytes()
	files := []string{}
	for i, k := range []struct {
		typ  byte
		seed []byte
		pub  []byte
	}{{0x01, edSeed, edPub}, {0x06, pqSeed, pqPub}} {
		skey := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s", name, keyID(name, k.typ, k.pub), base64.StdEncoding.EncodeToString(append([]byte{k.typ}, k.seed...)))
		f := filepath.Join(dir, fmt.Sprintf("key%d.sec", i))
		if err := os.WriteFile(f, []byte(skey), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	w := &RunningWitness{Keys: []string{
		fmt.Sprintf("%s+%08x+%s", name, keyID(name, 0x04, edPub), base64.StdEncoding.EncodeToString(append([]byte{0x04}, edPub...))),
		fmt.Sprintf("%s+%08x+%s", name, keyID(name, 0x06, pqPub), base64.StdEncoding.EncodeToString(append([]byte{0x06}, pqPub...))),
	}}
	logs := filepath.Join(dir, "logs.yaml")
	yaml := fmt.Sprintf("Logs:\n  - Origin: %q\n    PublicKey: %q\n    URL: \"http://127.0.0.1:1/unused/\"\n", origin, logKey)
	if err := os.WriteFile(logs, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// go install into the test's directory, then run the binary itself
	// (under go run, stopping the go command would leave its child
	// running).
	bin := filepath.Join(dir, "bin")
	inst := exec.Command(goBin, "install", WitnessModule)
	inst.Dir = dir
	inst.Env = append(os.Environ(), "GOFLAGS=", "GOBIN="+bin)
	if b, err := inst.CombinedOutput(); err != nil {
		testenv.Missing(t, "the witness ("+WitnessModule+")", fmt.Errorf("go install: %v: %s", err, b))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "omniwitness"),
		"--listen="+addr, "--metrics_listen=", "--db_file="+filepath.Join(dir, "witness.db"),
		"--private_key_path="+files[0], "--private_key_path="+files[1], "--additional_logs="+logs,
		"--logtostderr")
	cmd.Dir = dir
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	w.Output = out.String
	if err := cmd.Start(); err != nil {
		cancel()
		testenv.Missing(t, "the witness ("+WitnessModule+")", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the witness exited: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness did not listen on %s within a minute:\n%s", addr, out.String())
		}
	}
	w.URL = "http://" + addr
	return w
}

// keyID is c2sp.org/signed-note's key id, computed here independently of
// package translog.
func keyID(name string, typ byte, pub []byte) uint32 {
	h := sha256.Sum256(append(append([]byte(name+"\n"), typ), pub...))
	return binary.BigEndian.Uint32(h[:4])
}
