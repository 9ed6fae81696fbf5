package keystore

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
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
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	build := func(src string) (string, error) {
		tmp := t.TempDir()
		file := filepath.Join(tmp, "mix.go")
		if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		ov, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(dir, "zz_mix_overlay.go"): file}})
		ovFile := filepath.Join(tmp, "overlay.json")
		os.WriteFile(ovFile, ov, 0o600)
		cmd := exec.Command(goBin, "build", "-overlay", ovFile, ".")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	cases := []struct {
		desc, body string
		ok         bool
	}{
		{"control: identity key opens identity record", `var w *wrapped[identityTag]; _, _ = open(&k.identity, w)`, true},
		{"open a session record with the identity key", `var w *wrapped[sessionTag]; _, _ = open(&k.identity, w)`, false},
		{"open an identity record with the session key", `var w *wrapped[identityTag]; _, _ = open(&k.session, w)`, false},
		{"seal into a kem record with the session key", `var w *wrapped[kemTag] ; w, _ = seal(&k.session, w.meta, nil); _ = w`, false},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			src := "package keystore\n\nfunc mixTest(k *keks) {\n\t" + c.body + "\n}\n"
			out, err := build(src)
			if c.ok && err != nil {
				t.Fatalf("control does not compile: %s", out)
			}
			if !c.ok {
				if err == nil {
					t.Fatal("mixing classes compiled")
				}
				if !strings.Contains(out, "does not match") && !strings.Contains(out, "cannot use") && !strings.Contains(out, "mismatched types") && !strings.Contains(out, "in call to") {
					t.Fatalf("failed for another reason than a type mismatch: %s", out)
				}
			}
		})
	}
}
