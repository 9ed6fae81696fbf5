package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
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
	i := strings.Index(s, "## A short tour of the CLI")
	if i < 0 {
		t.Fatal("README has no tour section")
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("tour has no sh block")
	}
	block := s[start+6 : start+6+end]

	work := t.TempDir()
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", filepath.Join(work, "enigm"), ".")
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
