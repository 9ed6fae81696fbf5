package command

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/enigm/enigm/chain"
)

// openAPIRoutes reads the "METHOD /path" operations of api/openapi.yaml:
// two-space-indented paths under "paths:", four-space-indented methods.
func openAPIRoutes(t *testing.T) []string {
	f, err := os.Open("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pathRE := regexp.MustCompile(`^  (/[^:]*):\s*$`)
	methodRE := regexp.MustCompile(`^    (get|put|post|delete|patch|head|options):\s*$`)
	var out []string
	inPaths, cur := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "paths:" {
			inPaths = true
			continue
		}
		if !inPaths {
			continue
		}
		if line != "" && !strings.HasPrefix(line, " ") {
			inPaths = false
			continue
		}
		if m := pathRE.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if m := methodRE.FindStringSubmatch(line); m != nil && cur != "" {
			out = append(out, strings.ToUpper(m[1])+" "+cur)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every route the server registers is in api/openapi.yaml, and every
// operation there is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	served := e.srv.Routes()
	doc := openAPIRoutes(t)
	if len(doc) < 20 {
		t.Fatalf("read only %d operations from the OpenAPI file", len(doc))
	}
	for _, r := range served {
		if !slices.Contains(doc, r) {
			t.Errorf("served but not in api/openapi.yaml: %s", r)
		}
	}
	for _, r := range doc {
		if !slices.Contains(served, r) {
			t.Errorf("in api/openapi.yaml but not served: %s", r)
		}
	}
	slices.Sort(doc)
	for i := 1; i < len(doc); i++ {
		if doc[i] == doc[i-1] {
			t.Errorf("operation twice in api/openapi.yaml: %s", doc[i])
		}
	}
}

// The ChainError enum of api/openapi.yaml lists exactly the wire names of
// chain's code table, in its order.
func TestOpenAPIChainErrors(t *testing.T) {
	b, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n    ChainError:\n")
	if !ok {
		t.Fatal("no ChainError schema in api/openapi.yaml")
	}
	_, rest, ok = strings.Cut(rest, "\n      enum:\n")
	if !ok {
		t.Fatal("the ChainError schema has no enum")
	}
	var doc []string
	for _, line := range strings.Split(rest, "\n") {
		name, ok := strings.CutPrefix(line, "        - ")
		if !ok {
			break
		}
		doc = append(doc, name)
	}
	var want []string
	for _, c := range chain.Codes() {
		want = append(want, c.String())
	}
	if !slices.Equal(doc, want) {
		t.Fatalf("api/openapi.yaml ChainError enum:\n%v\nchain's table:\n%v", doc, want)
	}
}
