// Package translogtest holds test helpers for logs of package translog:
// running outside tools against a served log.
package translogtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enigm/enigm/internal/testenv"
)

// FsckModule is Tessera's fsck for tlog-tiles logs, at the version the
// tests run (go run fetches and builds it; it is not a dependency of the
// module). Its flags: --storage_url (the log's prefix URL), --public_key
// (a file holding one Ed25519 verifier key), --origin, --ui=false (log
// lines instead of a terminal UI), --N (workers).
const FsckModule = "github.com/transparency-dev/tessera/cmd/fsck@v1.0.4"

// FsckResult is what one fsck run reported.
type FsckResult struct {
	// OK: fsck re-derived every tile and the checkpoint's root from the
	// entry bundles and found them equal ("Successfully fsck'd log with
	// size N"), and reported no failure.
	OK bool
	// Size is the tree size fsck reported as checked (OK only).
	Size uint64
	// Output is everything fsck printed.
	Output string
}

var (
	okLine   = regexp.MustCompile(`Successfully fsck'd log with size (\d+) `)
	klogLine = regexp.MustCompile(`(?m)^[IWEF]\d{4} `)
)

// Fsck runs Tessera's fsck against the tlog-tiles log at prefixURL (for
// example http://127.0.0.1:1234/log/), verifying its checkpoint with the
// Ed25519 verifier key vkey. When fsck cannot be built or started (no go
// command, no module proxy), the test is skipped, or fails under
// ENIGM_REQUIRE_ALL=1.
//
// fsck exits 0 even when its check fails (it logs "fsck failed: …"), so
// the result is read from its output: OK only with its success line and
// without a failure line.
func Fsck(t testing.TB, prefixURL, origin, vkey string) FsckResult {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go command (to run Tessera's fsck)", err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "log.pub")
	if err := os.WriteFile(keyFile, []byte(vkey), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "run", FsckModule,
		"--storage_url="+prefixURL, "--public_key="+keyFile, "--origin="+origin,
		"--ui=false", "--N=4")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	s := string(out)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		testenv.Missing(t, "Tessera's fsck", err)
	}
	if err != nil && !klogLine.MatchString(s) {
		// go run itself failed (fetching or building fsck): fsck, which
		// logs through klog, printed nothing.
		testenv.Missing(t, "Tessera's fsck ("+FsckModule+")", fmt.Errorf("%v: %s", err, s))
	}
	r := FsckResult{Output: s}
	if m := okLine.FindStringSubmatch(s); m != nil && err == nil && !strings.Contains(s, "fsck failed") {
		r.OK = true
		fmt.Sscan(m[1], &r.Size)
	}
	return r
}

// syncBuf collects a process's output for concurrent readers.
type syncBuf struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}
