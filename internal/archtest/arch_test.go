package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/enigm/enigm"

// deviceRoots are the device-side programs: what a phone or a laptop
// carries. They must not contain the server or a database.
var deviceRoots = []string{mod + "/cmd/enigm", mod + "/mobile"}

// serverOnly are the packages a device root must not reach, by import path
// prefix (a prefix ending in "/" matches below it; otherwise the path
// itself and everything below it).
var serverOnly = []struct{ prefix, why string }{
	{mod + "/command", "Enigm Command, the server (with its store)"},
	{mod + "/internal/app/commandcli", "the enigm-command command line (serve and the admin client)"},
	{"github.com/jackc/", "pgx, the PostgreSQL driver"},
	{"github.com/lib/pq", "lib/pq, a PostgreSQL driver"},
	{"modernc.org/sqlite", "SQLite (pure Go)"},
	{"github.com/mattn/go-sqlite3", "SQLite (cgo)"},
	{"database/sql", "database/sql: every SQL driver registers through it; a device's only store is its bbolt keystore"},
}

// pureRoots are the pure cores: functions of (state, input, time).
var pureRoots = []string{mod + "/policy", mod + "/lifecycle", mod + "/chain"}

// pureModuleDeps are the module packages a pure core may import (and each
// is held to the same rules). A pure root's own subpackages are allowed too.
var pureModuleDeps = []string{mod + "/hybrid", mod + "/internal/wire"}

// ioImports are the standard packages (and prefixes) a pure core, or a
// module package it reaches, must not import directly. Transitive standard
// library imports are not judged: fmt imports os for Printf. The package
// time is allowed for time.Time values and durations; reading the clock is
// left to review (every pure entry point takes now as an argument).
// crypto/rand is allowed: no pure core imports it today, and randomness is
// not I/O that can fail or leak state.
var ioImports = []struct{ prefix, why string }{
	{"os", "files, environment, processes and signals (os, os/exec, os/signal, os/user)"},
	{"io/fs", "file systems"},
	{"io/ioutil", "files"},
	{"path/filepath", "file-system paths (Walk, Glob and EvalSymlinks read the disk)"},
	{"net", "the network (net, net/http, net/url, …)"},
	{"database/", "databases"},
	{"syscall", "system calls"},
	{"golang.org/x/sys/", "system calls"},
	{"log", "process-wide log output (log, log/slog, log/syslog): a pure core returns errors"},
	{"plugin", "loading code at run time"},
	{"C", "cgo: C code can do any I/O"},
}

// contexts are the build configurations the rules are checked in: a file
// behind a build tag or GOOS suffix must not smuggle a forbidden import in.
// (Windows is not a target: the TPM backend needs a Linux or socket TPM.)
var contexts = []struct {
	name string
	env  []string
}{
	{"host", nil},
	{"linux/amd64 nocgo", []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"}},
	{"darwin/arm64", []string{"GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=1"}},
	{"android/arm64", []string{"GOOS=android", "GOARCH=arm64", "CGO_ENABLED=1"}},
	{"ios/arm64", []string{"GOOS=ios", "GOARCH=arm64", "CGO_ENABLED=1"}},
}

type pkg struct {
	ImportPath string
	Dir        string
	Standard   bool
	Imports    []string
	Module     *struct{ GoMod string }
	Error      *struct{ Err string }
}

// graph is the import graph go list reports for some roots.
type graph map[string]*pkg

// goCmd is the go command of the toolchain running the test (go test
// puts its own GOROOT/bin first in PATH).
func goCmd(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command in PATH: %v", err)
	}
	return p
}

// load runs `go list -deps` over patterns with extra environment.
func load(t *testing.T, env []string, patterns ...string) graph {
	t.Helper()
	args := append([]string{"list", "-deps", "-json=ImportPath,Dir,Standard,Imports,Module,Error"}, patterns...)
	cmd := exec.Command(goCmd(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s (%s): %v\n%s", strings.Join(args, " "), strings.Join(env, " "), err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		g[p.ImportPath] = p
	}
	for _, pat := range patterns {
		if !strings.Contains(pat, "...") && g[pat] == nil {
			t.Fatalf("go list did not report %s (%s)", pat, strings.Join(env, " "))
		}
	}
	g.touch(t)
	return g
}

// touch reads the directory and stats the files of every module package in
// g, and the go.mod and go.sum. go test caches a passing result keyed on
// the files the test itself opened; go list's reads in a child process are
// not seen. Without this, a new import in cmd/enigm would leave the cached
// "ok" standing.
func (g graph) touch(t *testing.T) {
	t.Helper()
	for _, p := range g {
		if p.Module == nil || !matches(p.ImportPath, mod) {
			continue
		}
		if p.Module.GoMod != "" {
			os.Stat(p.Module.GoMod)
			os.Stat(filepath.Join(filepath.Dir(p.Module.GoMod), "go.sum"))
		}
		entries, err := os.ReadDir(p.Dir)
		if err != nil {
			t.Fatalf("reading %s: %v", p.Dir, err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				os.Stat(filepath.Join(p.Dir, e.Name()))
			}
		}
	}
}

// matches reports whether path is prefix or below it.
func matches(path, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix)
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// chain returns the import path from root to target ("a -> b -> c"), or ""
// when root does not reach target.
func (g graph) chain(root, target string) string {
	from := map[string]string{root: ""}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var path []string
			for q := p; q != ""; q = from[q] {
				path = append(path, q)
			}
			slices.Reverse(path)
			return strings.Join(path, " -> ")
		}
		if g[p] == nil {
			continue
		}
		for _, i := range g[p].Imports {
			if _, seen := from[i]; !seen {
				from[i] = p
				queue = append(queue, i)
			}
		}
	}
	return ""
}

// reach returns every package root reaches, root included.
func (g graph) reach(root string) []string {
	var out []string
	seen := map[string]bool{root: true}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, p)
		if g[p] == nil {
			continue
		}
		for _, i := range g[p].Imports {
			if !seen[i] {
				seen[i] = true
				queue = append(queue, i)
			}
		}
	}
	slices.Sort(out)
	return out
}

// serverViolations lists every server-only package root reaches, with the
// import chain that reaches it (the first one per rule).
func (g graph) serverViolations(root string) []string {
	var out []string
	reached := g.reach(root)
	for _, rule := range serverOnly {
		for _, p := range reached {
			if matches(p, rule.prefix) {
				out = append(out, fmt.Sprintf("%s reaches %s (%s): %s", root, p, rule.why, g.chain(root, p)))
				break
			}
		}
	}
	return out
}

// pureViolations lists the I/O imports of root and of every module package
// it reaches, and every module package it reaches outside the pure set.
func (g graph) pureViolations(root string) []string {
	var out []string
	for _, p := range g.reach(root) {
		if !matches(p, mod) {
			continue
		}
		if !matches(p, root) && !slices.ContainsFunc(pureModuleDeps, func(d string) bool { return matches(p, d) }) &&
			!slices.ContainsFunc(pureRoots, func(d string) bool { return matches(p, d) }) {
			out = append(out, fmt.Sprintf("pure %s reaches %s, which is not a pure package: %s", root, p, g.chain(root, p)))
			continue
		}
		for _, i := range g[p].Imports {
			for _, rule := range ioImports {
				if matches(i, rule.prefix) {
					out = append(out, fmt.Sprintf("pure %s: %s imports %s (%s): %s", root, p, i, rule.why, g.chain(root, p)))
				}
			}
		}
	}
	return out
}

// TestDeviceBinariesHaveNoServer: cmd/enigm and mobile (with its
// subpackages) reach neither Command nor a database driver, in every
// build configuration.
func TestDeviceBinariesHaveNoServer(t *testing.T) {
	for _, c := range contexts {
		t.Run(c.name, func(t *testing.T) {
			g := load(t, c.env, mod+"/cmd/enigm", mod+"/mobile/...")
			roots := []string{mod + "/cmd/enigm"}
			for p := range g {
				if matches(p, mod+"/mobile") {
					roots = append(roots, p)
				}
			}
			if len(roots) < len(deviceRoots) {
				t.Fatalf("go list found no mobile package: %v", roots)
			}
			slices.Sort(roots)
			for _, r := range roots {
				for _, v := range g.serverViolations(r) {
					t.Error(v)
				}
			}
		})
	}
}

// TestPureCoresDoNoIO: policy, lifecycle and chain import no I/O package,
// and reach only each other and the pure leaves (hybrid, internal/wire),
// which are held to the same rule.
func TestPureCoresDoNoIO(t *testing.T) {
	for _, c := range contexts {
		t.Run(c.name, func(t *testing.T) {
			g := load(t, c.env, pureRoots...)
			for _, r := range pureRoots {
				for _, v := range g.pureViolations(r) {
					t.Error(v)
				}
			}
		})
	}
}

// testkit is the shared test support package: tiny Argon2id costs and a
// settable clock, for _test.go files only.
const testkit = mod + "/internal/testkit"

// pkcs11test is the PKCS#11 token setups package (SoftHSM2 configurations,
// token initialization with fixed PINs), for _test.go files only.
const pkcs11test = mod + "/backend/pkcs11/pkcs11test"

// testOnlyImporters lists the packages in g, other than target itself,
// that import target. g holds no test files, so every one is a violation.
func (g graph) testOnlyImporters(target string) []string {
	var out []string
	for p, pk := range g {
		if p != target && slices.Contains(pk.Imports, target) {
			out = append(out, fmt.Sprintf("%s imports %s, which only _test.go files may import", p, target))
		}
	}
	slices.Sort(out)
	return out
}

// checkTestOnly: no package of the module imports target from non-test
// code, in any build configuration.
func checkTestOnly(t *testing.T, target string) {
	for _, c := range contexts {
		t.Run(c.name, func(t *testing.T) {
			g := load(t, c.env, mod+"/...")
			if g[target] == nil {
				t.Fatalf("go list %s/... did not report %s", mod, target)
			}
			for _, v := range g.testOnlyImporters(target) {
				t.Error(v)
			}
		})
	}
}

// TestTestkitOnlyInTests: no package of the module imports internal/testkit
// from non-test code, in any build configuration, so its test shortcuts
// (FastKDF) cannot reach a binary.
func TestTestkitOnlyInTests(t *testing.T) { checkTestOnly(t, testkit) }

// TestPKCS11TestOnlyInTests: no package of the module imports
// backend/pkcs11/pkcs11test from non-test code, in any build
// configuration, so its token setups (fixed SO and user PINs, SoftHSM2
// configurations, SOFTHSM2_CONF set process-wide) cannot reach a binary.
func TestPKCS11TestOnlyInTests(t *testing.T) { checkTestOnly(t, pkcs11test) }

// apps holds the application packages: the command lines and the load
// tool, one per binary. Only a cmd/ main may import one (tests may drive
// them); shared code lives in the leaves beside internal/app.
const apps = mod + "/internal/app/"

// appImporters lists the packages in g that import an application package
// without being a binary's main under cmd/.
func (g graph) appImporters() []string {
	var out []string
	for p, pk := range g {
		if matches(p, mod+"/cmd") {
			continue
		}
		for _, i := range pk.Imports {
			if matches(i, apps) && !matches(p, apps+strings.TrimPrefix(i, apps)) {
				out = append(out, fmt.Sprintf("%s imports the application package %s: shared code belongs in a leaf outside internal/app", p, i))
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestAppPackagesOnlyFromCmd: the command lines and the load tool are
// imported by their binaries' mains only (non-test code), so a library
// cannot come to depend on a CLI.
func TestAppPackagesOnlyFromCmd(t *testing.T) {
	g := load(t, nil, mod+"/...")
	n := 0
	for p := range g {
		if matches(p, apps) {
			n++
		}
	}
	if n < 3 {
		t.Fatalf("go list found %d application packages under %s, want the two CLIs and the load tool", n, apps)
	}
	for _, v := range g.appImporters() {
		t.Error(v)
	}
}

// TestRulesCatchViolations runs the same checks on packages that break
// them, so a mistake in the graph walk or in a pattern cannot make the
// rules above pass vacuously.
func TestRulesCatchViolations(t *testing.T) {
	g := load(t, nil, mod+"/cmd/enigm-command", mod+"/keystore", mod+"/device")
	srv := strings.Join(g.serverViolations(mod+"/cmd/enigm-command"), "\n")
	for _, want := range []string{" reaches " + mod + "/command", "modernc.org/sqlite", "github.com/jackc/", "database/sql"} {
		if !strings.Contains(srv, want) {
			t.Errorf("the server binary's violations do not mention %q:\n%s", want, srv)
		}
	}
	if v := g.pureViolations(mod + "/keystore"); !slices.ContainsFunc(v, func(s string) bool {
		return strings.Contains(s, "keystore imports os ")
	}) {
		t.Errorf("keystore (which opens files) passes the pure rule: %q", v)
	}
	if v := g.pureViolations(mod + "/device"); !slices.ContainsFunc(v, func(s string) bool {
		return strings.Contains(s, "which is not a pure package")
	}) {
		t.Errorf("device (which reaches keystore and client) passes the pure rule: %q", v)
	}
	for _, target := range []string{testkit, pkcs11test} {
		bad := graph{mod + "/keystore": {ImportPath: mod + "/keystore", Imports: []string{"os", target}}, target: {ImportPath: target}}
		if v := bad.testOnlyImporters(target); len(v) != 1 || !strings.Contains(v[0], mod+"/keystore imports "+target) {
			t.Errorf("a package importing %s from non-test code passes: %q", target, v)
		}
	}
	cli := apps + "enigmcli"
	badApp := graph{mod + "/device": {ImportPath: mod + "/device", Imports: []string{cli}}, mod + "/cmd/enigm": {ImportPath: mod + "/cmd/enigm", Imports: []string{cli}}}
	if v := badApp.appImporters(); len(v) != 1 || !strings.Contains(v[0], mod+"/device imports the application package") {
		t.Errorf("a library importing a CLI package passes, or a main importing one fails: %q", v)
	}
}
