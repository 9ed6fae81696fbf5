package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryFuzzTargetHasACorpus: every fuzz target in the module has a
// committed seed corpus (testdata/fuzz/<Target>/ beside it, at least one
// file), as the README promises for every decoder: the seeds run as
// ordinary tests in the suite, so a decoder without seeds is exercised
// only by hand-run fuzzing.
func TestEveryFuzzTargetHasACorpus(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	targets := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Fuzz") {
				continue
			}
			targets++
			dir := filepath.Join(filepath.Dir(path), "testdata", "fuzz", fd.Name.Name)
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) == 0 {
				rel, _ := filepath.Rel(root, dir)
				t.Errorf("%s (%s) has no committed seed corpus: add seeds under %s", fd.Name.Name, path, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if targets < 20 {
		t.Fatalf("found only %d fuzz targets: the walk misses the module", targets)
	}
}
