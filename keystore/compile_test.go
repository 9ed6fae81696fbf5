package keystore

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/enigm/enigm/internal/testkit"
)

// The class separation is enforced by the compiler: code that opens a
// session-class record with the identity class's wrapping key, or seals
// under the wrong class key, does not build. This test adds such code to
// the package through a build overlay and checks that the compiler refuses
// it — and, as a control, that the same code with matching classes builds.
func TestClassMixingDoesNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the compiler")
	}
	build := func(src string) (string, error) { return buildWithFile(t, ".", "mix.go", src) }
	// Each refused case names the error it must fail with: the class tags
	// of the two sides, at the mixing line of the added file. Any other
	// failure (a typo, an unrelated inference error) is not a proof.
	cases := []struct {
		desc, body string
		want       string // regexp the compiler's message must match; "" for the control
	}{
		{"control: identity key opens identity record", `var w *wrapped[identityTag]; _, _ = open(&k.identity, w)`, ""},
		{"control: kem key seals a kem record", `var w *wrapped[kemTag]; w, _ = seal(&k.kem, w.meta, nil); _ = w`, ""},
		{"open a session record with the identity key", `var w *wrapped[sessionTag]; _, _ = open(&k.identity, w)`,
			`in call to open, type \*wrapped\[sessionTag\] of w does not match inferred type \*wrapped\[identityTag\] for \*wrapped\[T\]`},
		{"open an identity record with the session key", `var w *wrapped[identityTag]; _, _ = open(&k.session, w)`,
			`in call to open, type \*wrapped\[identityTag\] of w does not match inferred type \*wrapped\[sessionTag\] for \*wrapped\[T\]`},
		{"seal into a kem record with the session key", `var w *wrapped[kemTag]; w, _ = seal(&k.session, w.meta, nil); _ = w`,
			`cannot use seal\(&k\.session, w\.meta, nil\) \(value of type \*wrapped\[sessionTag\]\) as \*wrapped\[kemTag\] value in assignment`},
		{"seal as kem with the session key", `_, _ = seal[kemTag](&k.session, record.Meta{}, nil)`,
			`cannot use &k\.session \(value of type \*kek\[sessionTag\]\) as \*kek\[kemTag\] value in argument to seal\[kemTag\]`},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			src := "package keystore\n\nimport \"github.com/enigm/enigm/keystore/internal/record\"\n\nvar _ record.Meta\n\nfunc mixTest(k *keks) {\n\t" + c.body + "\n}\n"
			out, err := build(src)
			if c.want == "" {
				if err != nil {
					t.Fatalf("control does not compile: %s", out)
				}
				return
			}
			if err == nil {
				t.Fatal("mixing classes compiled")
			}
			// One error, on the mixing line (line 8 of mix.go), and it is the expected one.
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || !strings.Contains(lines[1], "mix.go:8:") || !regexp.MustCompile(c.want).MatchString(lines[1]) {
				t.Fatalf("failed for another reason than the class mismatch:\n%s\nwant one error on mix.go:8 matching %s", out, c.want)
			}
		})
	}
}

// buildWithFile runs go build in the package directory rel (relative to
// this package's) with one more file holding src, added through an
// overlay as zz_<name>_overlay.go (the tree is not written to), and
// returns the compiler's output; its errors name the file name.
func buildWithFile(t *testing.T, rel, name, src string) (string, error) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(wd, rel)
	tmp := t.TempDir()
	file := filepath.Join(tmp, name)
	testkit.NoErr(t, os.WriteFile(file, []byte(src), 0o600))
	target := filepath.Join(dir, "zz_"+strings.TrimSuffix(name, ".go")+"_overlay.go")
	ov, _ := json.Marshal(map[string]any{"Replace": map[string]string{target: file}})
	ovFile := filepath.Join(tmp, "overlay.json")
	os.WriteFile(ovFile, ov, 0o600)
	cmd := exec.Command("go", "build", "-overlay", ovFile, ".") // go test puts its own GOROOT/bin first in PATH
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
