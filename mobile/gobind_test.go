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
// directive), on the bound packages, and checks what the go/types check
// above cannot see: that the generated Java compiles (javac, against stubs
// of the few Android SDK classes gobind's support code names) and that the
// Objective-C headers are generated, skip nothing and override no NSObject
// method. Objective-C is not compiled (no Xcode here); nor is the generated
// Go glue (it needs the NDK or Xcode toolchains).
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
