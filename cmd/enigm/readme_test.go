package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeTour runs the README's CLI tour as written, against a freshly
// built binary, so the README cannot drift from what enigm does.
func TestReadmeTour(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "## The keystore on its own")
	if i < 0 {
		t.Fatal("README has no keystore section")
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("tour has no sh block")
	}
	block := s[start+6 : start+6+end]

	work := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(work, "enigm"), ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	comment := regexp.MustCompile(`\s+#\s.*$`)
	var script []string
	script = append(script, "set -euo pipefail")
	generated := false
	for _, line := range strings.Split(block, "\n") {
		line = comment.ReplaceAllString(line, "")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "go build") {
			continue
		}
		// The README uses 3f9a1c as an example key id prefix: use the
		// key the tour generated.
		line = strings.ReplaceAll(line, "3f9a1c", "$KEYID")
		script = append(script, line)
		if strings.Contains(line, "keys generate --class identity") {
			generated = true
			script = append(script, `KEYID=$(./enigm keys list --json | sed -n 's/.*"id": "\([0-9a-f]\{12\}\).*/\1/p' | head -n 1)`, `test -n "$KEYID"`)
		}
	}
	if !generated {
		t.Fatal("the tour no longer generates an identity key")
	}
	cmd := exec.Command("bash", "-c", strings.Join(script, "\n"))
	cmd.Dir = work
	cmd.Env = []string{"HOME=" + work, "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README tour failed: %v\nscript:\n%s\noutput:\n%s", err, strings.Join(script, "\n"), out)
	}
	for _, want := range []string{`"protection"`, `"state": "superseded"`, "signature valid", `"intact": true`, `"level"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("tour output lacks %s:\n%s", want, out)
		}
	}
}

// readmeBlock returns the first sh block after heading.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatalf("%q has no sh block", heading)
	}
	return s[start+6 : start+6+end]
}

// TestReadmeWalkthrough runs the README's two-device walkthrough line by
// line against a freshly built enigm-command serving on loopback,
// substituting the request id, pairing code and device id that earlier
// lines print, as a reader would.
func TestReadmeWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs a server")
	}
	block := readmeBlock(t, "## Walkthrough: two devices and a server")
	work := t.TempDir()
	goBin := "go" // go test puts its own GOROOT/bin first in PATH
	for _, p := range []string{"enigm", "enigm-command"} {
		if out, err := exec.Command(goBin, "build", "-o", filepath.Join(work, p), "../"+p).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", p, err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := exec.Command(filepath.Join(work, "enigm-command"), "serve", "--listen", addr, "--data", filepath.Join(work, "data"))
	srv.Env = append(os.Environ(), "ENIGM_COMMAND_PASSPHRASE=readme")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatal("server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	env := []string{"HOME=" + work, "PATH=" + os.Getenv("PATH"), "ENIGM_SERVER=http://" + addr}
	comment := regexp.MustCompile(`\s+#\s.*$`)
	vars := map[string]*regexp.Regexp{
		"REQUEST_ID":     regexp.MustCompile(`request ([0-9a-f]{32}) sent`),
		"PAIRING_CODE":   regexp.MustCompile(`pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})`),
		"DEVICE_ID_OF_B": regexp.MustCompile(`sent for device ([0-9a-f]{32})`),
	}
	got := map[string]string{}
	var all strings.Builder
	ran, failed := 0, 0
	mustFailLine := regexp.MustCompile(`^(.*\S)\s+\|\|\s+echo\s+'[^']*'$`)
	for _, line := range strings.Split(block, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		line = comment.ReplaceAllString(line, "")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "go build") || strings.HasPrefix(line, "export ENIGM_SERVER") {
			continue
		}
		for k, v := range got {
			line = strings.ReplaceAll(line, k, v)
		}
		// A line "CMD || echo '…'" documents a command that must fail: run
		// CMD alone and require that it does, saying why.
		mustFail := false
		if m := mustFailLine.FindStringSubmatch(line); m != nil {
			line, mustFail = m[1], true
		}
		cmd := exec.Command("bash", "-c", "set -o pipefail; "+line)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		all.WriteString("$ " + line + "\n" + string(out))
		switch {
		case mustFail && err == nil:
			t.Fatalf("README line should fail but exited 0: %s\n%s", line, all.String())
		case mustFail && !strings.Contains(string(out), "revoked"):
			t.Fatalf("README line failed without saying the device is revoked: %s\n%s", line, all.String())
		case !mustFail && err != nil:
			t.Fatalf("README line failed: %s\n%v\n%s", line, err, all.String())
		}
		if mustFail {
			failed++
		}
		ran++
		for k, re := range vars {
			if m := re.FindStringSubmatch(string(out)); m != nil {
				got[k] = m[1]
			}
		}
	}
	text := all.String()
	for _, want := range []string{"account alice created", "approved", "state       active", "hello from the laptop", "fingerprint", "revoked"} {
		if !strings.Contains(text, want) {
			t.Errorf("walkthrough output lacks %q:\n%s", want, text)
		}
	}
	if testing.Verbose() {
		t.Log(text)
	}
	if ran < 9 {
		t.Fatalf("only %d README lines ran", ran)
	}
	if failed != 1 {
		t.Fatalf("%d README lines were checked to fail, want 1 (the revoked device's sync)", failed)
	}
}
