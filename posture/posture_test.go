package posture

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/enigm/enigm/policy"
)

func fakeRoot(t *testing.T, secureBoot []byte, tracer string) string {
	t.Helper()
	root := t.TempDir()
	if secureBoot != nil {
		p := filepath.Join(root, secureBootVar)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, secureBoot, 0o644)
	}
	if tracer != "" {
		os.MkdirAll(filepath.Join(root, "proc/self"), 0o755)
		os.WriteFile(filepath.Join(root, "proc/self/status"), []byte("Name:\tx\nTracerPid:\t"+tracer+"\nUid:\t0\n"), 0o644)
	}
	return root
}

func TestLinux(t *testing.T) {
	on := []byte{6, 0, 0, 0, 1}
	off := []byte{6, 0, 0, 0, 0}
	dir := t.TempDir()
	tight := filepath.Join(dir, "tight")
	os.WriteFile(tight, nil, 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, nil, 0o644)
	os.Chmod(loose, 0o644)
	user := func() int { return 1000 }
	root := func() int { return 0 }
	cases := []struct {
		desc  string
		l     Linux
		level policy.PostureLevel
		facts []string
	}{
		{"all good", Linux{Root: fakeRoot(t, on, "0"), Paths: []string{tight}, EUID: user}, policy.PostureTrusted,
			[]string{"secure_boot=on", "store_permissions=ok"}},
		{"secure boot off", Linux{Root: fakeRoot(t, off, "0"), EUID: user}, policy.PostureDegraded,
			[]string{"secure_boot=off"}},
		{"no efi", Linux{Root: fakeRoot(t, nil, "0"), EUID: user}, policy.PostureDegraded,
			[]string{"secure_boot=unknown"}},
		{"root", Linux{Root: fakeRoot(t, on, "0"), EUID: root}, policy.PostureDegraded,
			[]string{"secure_boot=on", "running_as_root"}},
		{"tracer", Linux{Root: fakeRoot(t, on, "4242"), EUID: user}, policy.PostureCompromised,
			[]string{"secure_boot=on", "tracer_attached"}},
		{"loose store", Linux{Root: fakeRoot(t, on, "0"), Paths: []string{tight, loose}, EUID: user}, policy.PostureCompromised,
			[]string{"secure_boot=on", "store_permissions=loose"}},
		{"no proc", Linux{Root: fakeRoot(t, on, ""), EUID: user}, policy.PostureDegraded,
			[]string{"secure_boot=on", "tracer=unknown"}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			p := c.l.Posture()
			if p.Level != c.level || !reflect.DeepEqual(p.Facts, c.facts) {
				t.Fatalf("got %v %v, want %v %v", p.Level, p.Facts, c.level, c.facts)
			}
		})
	}
}

// On this very machine the provider produces an answer without error and
// sees no tracer (go test does not trace itself).
func TestLinuxLive(t *testing.T) {
	p := (&Linux{}).Posture()
	for _, f := range p.Facts {
		if f == "tracer_attached" {
			t.Fatal("tracer reported under go test")
		}
	}
	if p.Level == policy.PostureUnknown {
		t.Fatal("no level")
	}
}
