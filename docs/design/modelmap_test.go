// Package design holds the project's design notes. Its only code is this
// test, which keeps model.md — the key management model traced to code and
// tests — honest.
package design

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sections are the model's sections, in its order, as model.md titles them.
// iOS and Android are sub-sections of the platform section.
var sections = []string{
	"Overview", "Key Generation", "Private Key Protection",
	"Hardware-Backed Protection", "Platform-Specific Protection Model", "iOS",
	"Android", "Device-Bound Trust", "Multi-Device Key Handling", "Revocation",
	"Recovery Boundaries", "Security Limitations", "Lifecycle Summary",
	"Trust Boundaries",
}

var statuses = []string{"holds on some backends", "holds", "partial", "not yet built"}

// row is one statement row of model.md.
type row struct {
	line      int
	statement string
	tests     []string
	status    string
}

// parseMap reads model.md into rows by section.
func parseMap(t *testing.T) map[string][]row {
	t.Helper()
	b, err := os.ReadFile("model.md")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, s := range sections {
		known[s] = true
	}
	testRef := regexp.MustCompile("`([a-z0-9/]+)\\.((?:Test|Fuzz)[A-Za-z0-9_]+)`")
	out := map[string][]row{}
	section := ""
	for i, ln := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(ln, "## "); ok {
			section = strings.TrimSpace(h)
			continue
		}
		if h, ok := strings.CutPrefix(ln, "### "); ok && known[strings.TrimSpace(h)] {
			section = strings.TrimSpace(h)
			continue
		}
		if !known[section] || !strings.HasPrefix(ln, "| ") || strings.HasPrefix(ln, "| statement ") || strings.HasPrefix(ln, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(ln, "|"), " | ")
		if len(cells) != 5 {
			t.Errorf("model.md:%d: a row has 5 cells (statement, mechanism, code, tests, status), this one %d", i+1, len(cells))
			continue
		}
		r := row{line: i + 1, statement: strings.TrimSpace(cells[0]), status: strings.TrimSpace(cells[4])}
		for _, m := range testRef.FindAllStringSubmatch(cells[3], -1) {
			r.tests = append(r.tests, m[1]+"."+m[2])
		}
		out[section] = append(out[section], r)
	}
	return out
}

// TestModelMapRows: every section of the model has rows, every row has a
// status from the closed set, every partial or missing row says which
// issue (or which planned stage) carries the rest, and every row
// that claims to hold cites at least one test.
func TestModelMapRows(t *testing.T) {
	m := parseMap(t)
	for _, s := range sections {
		if s == "Platform-Specific Protection Model" && len(m["iOS"]) > 0 && len(m["Android"]) > 0 && len(m[s]) == 0 {
			t.Errorf("section %q has no rows of its own", s)
		}
		if len(m[s]) == 0 {
			t.Errorf("model.md: section %q has no rows", s)
		}
		for _, r := range m[s] {
			st := ""
			for _, c := range statuses {
				if strings.HasPrefix(r.status, c) {
					st = c
					break
				}
			}
			switch {
			case st == "":
				t.Errorf("model.md:%d: status %q is none of %q", r.line, r.status, statuses)
			case (st == "partial" || st == "not yet built") && !regexp.MustCompile(`#\d+|planned:`).MatchString(r.status):
				t.Errorf("model.md:%d: status %q names no issue (#N) or plan (planned: …)", r.line, r.status)
			case st == "holds" && r.status != "holds":
				t.Errorf("model.md:%d: status %q: \"holds\" takes no qualification; use \"holds on some backends: …\" or \"partial: …\"", r.line, r.status)
			}
			if strings.HasPrefix(st, "holds") && len(r.tests) == 0 {
				t.Errorf("model.md:%d: %q claims to hold but cites no test", r.line, r.statement)
			}
		}
	}
}

// TestModelMapCitedTestsExist: every test model.md cites is declared, with
// a test or fuzz signature, in the package it names. (The suite runs them
// all; this catches a rename or a removal that leaves the map lying.)
func TestModelMapCitedTestsExist(t *testing.T) {
	declared := map[string]map[string]bool{} // package dir -> names
	fset := token.NewFileSet()
	for _, rows := range parseMap(t) {
		for _, r := range rows {
			for _, ref := range r.tests {
				dot := strings.LastIndex(ref, ".")
				pkg, name := ref[:dot], ref[dot+1:]
				names, ok := declared[pkg]
				if !ok {
					names = map[string]bool{}
					files, _ := filepath.Glob(filepath.Join("..", "..", pkg, "*_test.go"))
					if len(files) == 0 {
						t.Errorf("model.md:%d: %s: package %s has no tests", r.line, ref, pkg)
					}
					for _, f := range files {
						af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
						if err != nil {
							t.Fatal(err)
						}
						for _, d := range af.Decls {
							if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && isTestFunc(fd) {
								names[fd.Name.Name] = true
							}
						}
					}
					declared[pkg] = names
				}
				if !names[name] {
					t.Errorf("model.md:%d: cites %s, which package %s does not declare", r.line, ref, pkg)
				}
			}
		}
	}
}

// isTestFunc reports whether fd has the shape go test runs: one parameter
// of type *testing.T or *testing.F.
func isTestFunc(fd *ast.FuncDecl) bool {
	p := fd.Type.Params.List
	if len(p) != 1 || len(p[0].Names) > 1 {
		return false
	}
	star, ok := p[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	want := "T"
	if strings.HasPrefix(fd.Name.Name, "Fuzz") {
		want = "F"
	}
	return sel.Sel.Name == want && strings.HasPrefix(fd.Name.Name, "Test") == (want == "T")
}

// specPath is the project's copy of the model; sharedSpecPath is the model
// as the team keeps it, in the shared folder beside a checkout (present for
// developers and CI, absent in a bare clone).
const (
	specPath       = "../spec/key-management-model.txt"
	sharedSpecPath = "../../../shared/spec/key-management-model.txt"
)

// TestModelMapCoversEveryStatement: every sentence and list item of the
// model appears, word for word, as the statement of a row in its section.
func TestModelMapCoversEveryStatement(t *testing.T) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	if shared, err := os.ReadFile(sharedSpecPath); err == nil && !bytes.Equal(shared, b) {
		t.Errorf("the model changed: %s differs from %s; copy it over and bring model.md up to date with it", sharedSpecPath, specPath)
	}
	spec := specStatements(t, string(b))
	m := parseMap(t)
	for _, s := range sections {
		have := map[string]bool{}
		for _, r := range m[s] {
			have[r.statement] = true
		}
		for _, st := range spec[s] {
			if !have[st] {
				t.Errorf("model.md section %q has no row for the model's statement %q", s, st)
			}
		}
	}
}

// specStatements splits the model into its sections' statements: each list
// item, and each sentence of prose that does not introduce a list.
func specStatements(t *testing.T, text string) map[string][]string {
	t.Helper()
	// The model's text glues some headings and lists to the line before.
	text = strings.ReplaceAll(text, ":-", ":\n-")
	for _, h := range sections {
		text = strings.ReplaceAll(text, "."+h+"\n", ".\n"+h+"\n")
	}
	known := map[string]bool{}
	for _, s := range sections {
		known[s] = true
	}
	out := map[string][]string{}
	var order []string
	section := ""
	for _, ln := range strings.Split(text, "\n") {
		ln = strings.TrimSpace(ln)
		switch {
		case ln == "":
		case known[ln]:
			section = ln
			order = append(order, ln)
		case section == "":
			t.Fatalf("model text before the first section: %q", ln)
		case strings.HasPrefix(ln, "- "):
			out[section] = append(out[section], strings.TrimPrefix(ln, "- "))
		default:
			for _, sent := range splitSentences(ln) {
				if !strings.HasSuffix(sent, ":") {
					out[section] = append(out[section], sent)
				}
			}
		}
	}
	if strings.Join(order, "|") != strings.Join(sections, "|") {
		t.Fatalf("the model's sections are %q; model.md and this test know %q: update both", order, sections)
	}
	return out
}

// splitSentences splits prose at ". " before a capital letter.
func splitSentences(s string) []string {
	var out []string
	for {
		i := regexp.MustCompile(`\. [A-Z]`).FindStringIndex(s)
		if i == nil {
			return append(out, s)
		}
		out = append(out, s[:i[0]+1])
		s = s[i[0]+2:]
	}
}
