package chain

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strings"
	"testing"
)

// codeIdents returns the identifiers of the Code constants declared in
// errors.go, in declaration order, so the table is checked against the
// source instead of against another hand-kept list.
func codeIdents(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for _, n := range vs.Names {
				if strings.HasPrefix(n.Name, "Err") {
					if len(vs.Values) != 0 {
						t.Fatalf("%s has an explicit value; the codes follow iota", n.Name)
					}
					names = append(names, n.Name)
				}
			}
		}
	}
	return names
}

// TestCodeTable: every code has a message and a unique snake_case wire
// name, the table round-trips (wire name -> code -> wire name), and the Go
// identifiers the vectors use map one-to-one onto the codes.
func TestCodeTable(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	idents := codeIdents(t)
	all := Codes()
	if len(idents) != len(all) || len(all) != 46 {
		t.Fatalf("errors.go declares %d codes, the table has %d (want 46)", len(idents), len(all))
	}
	names, msgs := map[string]Code{}, map[string]Code{}
	for i, c := range all {
		name := c.String()
		if !snake.MatchString(name) {
			t.Errorf("%s: wire name %q is not snake_case", idents[i], name)
		}
		if o, dup := names[name]; dup {
			t.Errorf("wire name %q for both %d and %d", name, o, c)
		}
		names[name] = c
		if o, dup := msgs[c.Error()]; dup || !strings.HasPrefix(c.Error(), "chain: ") {
			t.Errorf("message %q (code %d, also %d)", c.Error(), c, o)
		}
		msgs[c.Error()] = c
		if got, ok := ParseCode(name); !ok || got != c || got.String() != name {
			t.Errorf("ParseCode(%q) = %v, %v; want %d", name, got, ok, c)
		}
		if got, ok := codeByGoName(idents[i]); !ok || got != c {
			t.Errorf("%s maps to %v, %v; want wire name %s", idents[i], got, ok, name)
		}
	}
	for _, bad := range []string{"", "unknown", "ErrStale", "Stale", "stale ", "STALE"} {
		if c, ok := ParseCode(bad); ok {
			t.Errorf("ParseCode(%q) = %d; Go identifiers and other spellings are not wire names", bad, c)
		}
	}
	for _, c := range []Code{0, Code(len(all) + 1)} {
		if c.String() != "unknown" || !strings.Contains(c.Error(), "unknown") {
			t.Errorf("code %d: %q, %q", uint16(c), c.String(), c.Error())
		}
	}
}

func TestCodeOf(t *testing.T) {
	for _, c := range Codes() {
		err := &LinkError{Index: 2, Err: fmt.Errorf("%w: detail", c)}
		if got, ok := CodeOf(err); !ok || got != c {
			t.Errorf("CodeOf(wrapped %s) = %v, %v", c, got, ok)
		}
		if !errors.Is(err, c) {
			t.Errorf("errors.Is(wrapped %s) is false", c)
		}
	}
	both := fmt.Errorf("%w: %w", ErrMalformed, ErrMissingPQ)
	if got, _ := CodeOf(both); got != ErrMissingPQ {
		t.Errorf("CodeOf(malformed and missing_pq) = %s, want the specific missing_pq", got)
	}
	if got, ok := CodeOf(errors.New("chain: link timestamp too old to append")); ok {
		t.Errorf("CodeOf(a look-alike message) = %s; codes are matched by value, not text", got)
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrStale), ErrStale) || errors.Is(ErrStale, ErrFork) {
		t.Error("errors.Is does not tell the codes apart")
	}
}
