package command

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
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
