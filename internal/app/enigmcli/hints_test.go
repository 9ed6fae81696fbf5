package enigmcli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cliHint is what a hint about the command line looks like inside a
// string: a command of either binary, or a long flag.
var cliHint = regexp.MustCompile("`enigm|enigm(-command)? (init|enroll|sync|keystore|keys|veto|recover|revoke|approve|devices|admin|org|serve)\\b|(^|[ (])--[a-z][a-z-]+")

// Library errors say what failed; which command to run next is the CLI's
// hint (classify, hintFor). No string in the libraries the CLIs sit on
// names an enigm command or a flag.
func TestLibraryErrorsCarryNoCLIHints(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	for _, dir := range []string{"keystore", "device", "client", "backend", "chain", "envelope", "policy", "lifecycle", "attestation", "posture"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, src, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err == nil && cliHint.MatchString(s) {
					t.Errorf("%s: %s names a command or flag of the CLI: %q", fset.Position(lit.Pos()), filepath.Base(path), s)
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
