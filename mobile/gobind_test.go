package mobile

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/enigm/enigm/internal/testenv"
)

// TestGobind runs the generator `gomobile bind` runs, gobind
// (golang.org/x/mobile/cmd/gobind, the version pinned by go.mod's tool
// directive), on the bound packages, and checks what the go/types check in
// gomobile_test.go cannot see: that the generated Java compiles (javac,
// against stubs of the few Android SDK classes gobind's support code
// names), that the generated Go glue type-checks against the bound
// packages (go vet, as built for Android), and that the Objective-C headers
// are generated, skip nothing and override no NSObject method. Not
// compiled: the Objective-C (no Xcode here) and the glue's C files (they
// need the NDK's jni.h).
func TestGobind(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go command", err)
	}
	javac, err := exec.LookPath("javac")
	if err != nil {
		testenv.Missing(t, "javac (a JDK: apt-get install default-jdk-headless)", err)
	}
	dir := t.TempDir()
	// Built once per run: the build is cached in the Go build cache.
	gobind := filepath.Join(dir, "gobind")
	if out, err := exec.Command(goCmd, "build", "-o", gobind, "golang.org/x/mobile/cmd/gobind").CombinedOutput(); err != nil {
		testenv.Missing(t, "gobind (golang.org/x/mobile/cmd/gobind, the go.mod tool)", fmt.Errorf("%v\n%s", err, out))
	}

	// One run for the three languages: loading the packages is most of
	// the cost. The host's build tags apply (no file of the bound packages
	// or their dependencies is specific to android or ios).
	out := filepath.Join(dir, "out")
	cmd := exec.Command(gobind, append([]string{"-lang=go,java,objc", "-outdir=" + out}, bound...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gobind: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("gobind stderr:\n%s", stderr.String())
	}
	files := map[string]string{} // path relative to out → contents
	if err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(out, path)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range gobindSkipped(files) {
		t.Errorf("gobind left out %s", p)
	}

	t.Run("java", func(t *testing.T) {
		for _, want := range []string{"java/mobile/Mobile.java", "java/mobile/Keystore.java", "java/mobile/KeyInfo.java",
			"java/bridge/Bridge.java", "java/bridge/Hardware.java", "java/go/Seq.java"} {
			if _, ok := files[want]; !ok {
				t.Errorf("gobind did not write %s", want)
			}
		}
		var srcs []string
		for path, text := range files {
			if !strings.HasSuffix(path, ".java") {
				continue
			}
			srcs = append(srcs, filepath.Join(out, filepath.FromSlash(path)))
			for _, m := range javaImport.FindAllStringSubmatch(text, -1) {
				if _, ok := androidStubs[m[1]]; strings.HasPrefix(m[1], "android.") && !ok {
					t.Errorf("%s imports %s, which needs the Android SDK: add a stub to androidStubs", path, m[1])
				}
			}
		}
		stubs := filepath.Join(dir, "stubs")
		for class, src := range androidStubs {
			path := filepath.Join(stubs, filepath.FromSlash(strings.ReplaceAll(class, ".", "/"))+".java")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			srcs = append(srcs, path)
		}
		sort.Strings(srcs)
		// As gomobile bind compiles it: Java 8, here against the JDK's
		// Java 8 API instead of android.jar.
		args := append([]string{"-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "--release", "8", "-encoding", "UTF-8", "-proc:none",
			"-d", filepath.Join(dir, "classes")}, srcs...)
		if out, err := exec.Command(javac, args...).CombinedOutput(); err != nil {
			t.Fatalf("javac on gobind's Java: %v\n%s", err, out)
		} else if len(out) > 0 {
			t.Logf("javac:\n%s", out)
		}
	})

	t.Run("go", func(t *testing.T) {
		gobindGoGlue(t, goCmd, javac, dir, files)
	})

	t.Run("objc", func(t *testing.T) {
		for _, h := range []string{"src/gobind/Mobile.objc.h", "src/gobind/Bridge.objc.h", "src/gobind/Universe.objc.h"} {
			text, ok := files[h]
			if !ok {
				t.Errorf("gobind did not write %s", h)
				continue
			}
			if !strings.Contains(text, "@interface MobileKeystore") && h == "src/gobind/Mobile.objc.h" {
				t.Errorf("%s has no MobileKeystore interface", h)
			}
			for _, p := range objcNSObjectClashes(text) {
				t.Errorf("%s: %s", h, p)
			}
		}
	})
}

// gobindGoGlue type-checks the Go half of the Android bindings, the main
// package gomobile bind builds into libgojni.so: gobind's go output and the
// Go file of its java output (seq_android.go, renamed so that it builds on
// this host), with the headers they include (src/gobind/), in a module of a temporary
// workspace that also uses this module. The JDK's jni.h stands in for the
// NDK's and androidLogStub for <android/log.h>; go vet runs cgo on the Go
// files and type-checks them, without compiling the C files.
func gobindGoGlue(t *testing.T, goCmd, javac string, dir string, files map[string]string) {
	if _, err := exec.LookPath("gcc"); err != nil {
		testenv.Missing(t, "gcc (cgo)", err)
	}
	real, err := filepath.EvalSymlinks(javac)
	if err != nil {
		t.Fatal(err)
	}
	jdkInclude := filepath.Join(filepath.Dir(filepath.Dir(real)), "include")
	if _, err := os.Stat(filepath.Join(jdkInclude, "jni.h")); err != nil {
		testenv.Missing(t, "the JDK's jni.h", err)
	}
	gomod, err := exec.Command(goCmd, "env", "GOMOD").Output()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(gomod)), "go.mod") {
		t.Fatalf("go env GOMOD: %q, %v", gomod, err)
	}
	glue := filepath.Join(dir, "glue")
	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for path, text := range files {
		name := strings.TrimPrefix(path, "src/gobind/")
		switch {
		case name == path || strings.Contains(name, "/") || name == "seq_darwin.go":
			continue
		case name == "seq_android.go":
			name = "seq_java.go"
		case !strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, ".h"):
			continue
		}
		if strings.HasSuffix(name, ".go") {
			n++
		}
		write(filepath.Join(glue, name), text)
	}
	if n < 4 {
		t.Fatalf("gobind wrote %d Go files of glue; want go_main.go, go_mobilemain.go, go_bridgemain.go, seq.go and seq_android.go", n)
	}
	write(filepath.Join(glue, "go.mod"), "module enigm.test/gobindglue\n\ngo 1.26.0\n")
	write(filepath.Join(dir, "go.work"), fmt.Sprintf("go 1.26.0\n\nuse (\n\t%s\n\t./glue\n)\n",
		filepath.ToSlash(filepath.Dir(strings.TrimSpace(string(gomod))))))
	write(filepath.Join(glue, "cstubs", "android", "log.h"), androidLogStub)
	// The flags go in the package, not in CGO_CFLAGS, which would rebuild
	// the standard library's cgo packages on every run.
	write(filepath.Join(glue, "cflags.go"), fmt.Sprintf("package main\n\n"+
		"// #cgo CFLAGS: -D__GOBIND_ANDROID__ -I${SRCDIR}/cstubs -I%s -I%s\nimport \"C\"\n",
		filepath.ToSlash(jdkInclude), filepath.ToSlash(filepath.Join(jdkInclude, "linux"))))
	vet := exec.Command(goCmd, "vet", ".")
	vet.Dir = glue
	vet.Env = append(os.Environ(), "GOWORK="+filepath.Join(dir, "go.work"), "GOFLAGS=", "CGO_ENABLED=1")
	if out, err := vet.CombinedOutput(); err != nil {
		t.Fatalf("go vet on gobind's Go glue: %v\n%s", err, out)
	}
}

// androidLogStub declares what gobind's seq_android.h uses of the NDK's
// <android/log.h>.
const androidLogStub = `#define ANDROID_LOG_INFO 4
#define ANDROID_LOG_FATAL 7
int __android_log_print(int prio, const char *tag, const char *fmt, ...);
`

// androidStubs are the Android SDK classes gobind's Java support code
// (go/Seq.java) names, as empty stand-ins for javac.
var androidStubs = map[string]string{
	"android.content.Context": "package android.content;\n\npublic class Context {}\n",
}

var (
	javaImport = regexp.MustCompile(`(?m)^import\s+(?:static\s+)?([\w.]+)\s*;`)
	// An Objective-C property, or a method's first selector part.
	objcProperty = regexp.MustCompile(`(?m)^@property\s*(?:\([^)]*\))?[^;]*?\b(\w+)\s*;`)
	objcMethod   = regexp.MustCompile(`(?m)^[-+]\s*\([^)]*\)\s*(\w+)\s*(:?)`)
	gobindSkip   = regexp.MustCompile(`// skipped (\w+ [\w.]+)`)
)

// nsObjectSelectors are NSObject's argument-less methods; a generated
// property or method of that name overrides them (a "class" property
// returning a string breaks isKindOfClass:, KVO and Swift casts). init is
// left out: gobind generates initializers on purpose.
var nsObjectSelectors = map[string]bool{
	"class": true, "superclass": true, "self": true, "hash": true, "description": true, "debugDescription": true,
	"zone": true, "retain": true, "release": true, "autorelease": true, "retainCount": true, "isProxy": true,
	"copy": true, "mutableCopy": true, "dealloc": true, "finalize": true, "new": true, "alloc": true,
}

// objcNSObjectClashes lists the properties and argument-less methods of
// an Objective-C header that override an NSObject method.
func objcNSObjectClashes(header string) []string {
	var out []string
	for _, m := range objcProperty.FindAllStringSubmatch(header, -1) {
		if nsObjectSelectors[m[1]] {
			out = append(out, fmt.Sprintf("property %q overrides NSObject's -%s", m[1], m[1]))
		}
	}
	for _, m := range objcMethod.FindAllStringSubmatch(header, -1) {
		if m[2] == "" && nsObjectSelectors[m[1]] {
			out = append(out, fmt.Sprintf("method %q overrides NSObject's %s", m[1], m[1]))
		}
	}
	return out
}

// gobindSkipped lists what gobind left out of the bindings (it writes a
// "// skipped …" comment instead of failing).
func gobindSkipped(files map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for path, text := range files {
		for _, m := range gobindSkip.FindAllStringSubmatch(text, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				out = append(out, m[1]+" (see "+path+")")
			}
		}
	}
	sort.Strings(out)
	return out
}

// The header checks catch what they are for.
func TestGobindCheckersCatch(t *testing.T) {
	const header = `@interface MobileKeyInfo : NSObject <goSeqRefInterface> {
}
@property (nonatomic) NSString* _Nonnull id_;
@property (nonatomic) NSString* _Nonnull class;
@property (nonatomic) NSString* _Nonnull keyClass;
- (NSString* _Nonnull)description;
- (NSString* _Nonnull)generate:(NSString* _Nullable)class algorithm:(NSString* _Nullable)algorithm;
- (nonnull instancetype)init;
- (BOOL)hash:(NSData* _Nullable)b;
@end
`
	got := strings.Join(objcNSObjectClashes(header), "\n")
	for _, want := range []string{`property "class"`, `method "description"`} {
		if !strings.Contains(got, want) {
			t.Errorf("missed %s; got:\n%s", want, got)
		}
	}
	for _, ok := range []string{"id_", "keyClass", "generate", "init", `"hash"`} {
		if strings.Contains(got, ok) {
			t.Errorf("false positive %s; got:\n%s", ok, got)
		}
	}
	skipped := gobindSkipped(map[string]string{"a.go": "// skipped method Keystore.Sign with unsupported parameter or return types\n",
		"b.java": "// skipped field KeyInfo.Tags with unsupported type: []string\n"})
	if len(skipped) != 2 || !strings.HasPrefix(skipped[0], "field KeyInfo.Tags") || !strings.HasPrefix(skipped[1], "method Keystore.Sign") {
		t.Errorf("gobindSkipped = %q", skipped)
	}
}
