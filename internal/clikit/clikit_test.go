package clikit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestPick(t *testing.T) {
	cands := []Candidate{
		{ID: "4f0c9a1e00000000000000000000aaaa", Name: "laptop"},
		{ID: "4f0c9a1e00000000000000000000bbbb", Name: "phone"},
		{ID: "7d21b0c400000000000000000000cccc", Name: "phone"},
		{ID: "9e9e9e9e00000000000000000000dddd", Name: "7d21b0"},
	}
	for _, c := range []struct {
		ref     string
		want    int
		wantErr error
	}{
		{"4f0c9a1e00000000000000000000aaaa", 0, nil},
		{"4F0C9A1E00000000000000000000AAAA", 0, nil}, // ids are hex: case does not matter
		{"laptop", 0, nil},
		{"4f0c9a1e00000000000000000000b", 1, nil},
		{"7d21b0", 3, nil}, // an exact name wins over an id prefix
		{"7d21b0c", 2, nil},
		{"phone", -1, ErrAmbiguous},  // two devices share the name
		{"4f0c9a", -1, ErrAmbiguous}, // two ids share the prefix
		{"4f0c9", -1, ErrNoMatch},    // fewer than MinPrefix digits
		{"tablet", -1, ErrNoMatch},
		{"ffffff", -1, ErrNoMatch},
	} {
		got, err := Pick("device", c.ref, cands)
		if got != c.want || !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
			t.Errorf("Pick(%q) = %d, %v; want %d, %v", c.ref, got, err, c.want, c.wantErr)
		}
	}
	var ue *UsageError
	if _, err := Pick("device", " ", cands); !errors.As(err, &ue) {
		t.Errorf("an empty reference: %v, want a usage error", err)
	}
}

func TestMessage(t *testing.T) {
	base := errors.New("keystore: no such key")
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: abcdef", base), "no such key: abcdef"},
		{fmt.Errorf("device: %w", fmt.Errorf("chain: %w", errors.New("link 3 does not verify"))), "link 3 does not verify"},
		{errors.New("server: name taken (409 name_taken)"), "server: name taken (409 name_taken)"},
		{errors.New("it is THIS device: every key on it is destroyed"), "it is THIS device: every key on it is destroyed"},
	} {
		if got := Message(c.err); got != c.want {
			t.Errorf("Message(%q) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, struct {
		A string `json:"a"`
	}{"x"}); err != nil || b.String() != "{\n  \"version\": 1,\n  \"a\": \"x\"\n}\n" {
		t.Fatalf("WriteJSON: %q %v", b.String(), err)
	}
	b.Reset()
	if err := WriteJSON(&b, struct{}{}); err != nil || b.String() != "{\n  \"version\": 1\n}\n" {
		t.Fatalf("WriteJSON of an empty object: %q %v", b.String(), err)
	}
	if err := WriteJSON(&b, []int{1}); err == nil {
		t.Fatal("WriteJSON took an array: the version field has nowhere to go")
	}
}

// A real SIGINT cancels the context with cause ErrInterrupted, and a run
// whose context was so cancelled exits 130 even when its command returned
// nil (a graceful stop).
func TestInterrupt(t *testing.T) {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGINT did not cancel the context")
	}
	if !errors.Is(context.Cause(ctx), ErrInterrupted) {
		t.Fatalf("cause %v, want ErrInterrupted", context.Cause(ctx))
	}
	for _, ret := range []error{nil, context.Canceled} {
		var out, errb bytes.Buffer
		p := &Program{Name: "t", Commands: []*Command{{Path: "wait", Run: func(ctx context.Context, _ []string) error {
			<-ctx.Done()
			return ret
		}}}}
		if code := p.Run(ctx, IO{Stdout: &out, Stderr: &errb}, []string{"wait"}); code != ExitInterrupted || !strings.Contains(errb.String(), "interrupted") {
			t.Errorf("interrupted run returning %v: exit %d, stderr %q", ret, code, errb.String())
		}
	}
}

// The program's Classify decides exit codes and hints; the JSON error
// carries its code and reasons; flags bind to typed fields.
func TestRunClassifies(t *testing.T) {
	denied := errors.New("policy: denied")
	var jsonOut bool
	var n int
	var d time.Duration
	p := &Program{Name: "t",
		Global: func(fs *pflag.FlagSet) { fs.BoolVar(&jsonOut, "json", false, "") },
		JSON:   func() bool { return jsonOut },
		Classify: func(err error) Failure {
			if errors.Is(err, denied) {
				return Failure{Exit: ExitDenied, Code: "denied", Reasons: []string{"key_state"}, Hint: "rotate the key"}
			}
			return Failure{}
		},
		Commands: []*Command{
			{Path: "deny", Run: func(context.Context, []string) error { return denied }},
			{Path: "fail", Run: func(context.Context, []string) error { return errors.New("device: broken") }},
			{Path: "num", Flags: func(fs *pflag.FlagSet) {
				fs.IntVar(&n, "n", 0, "")
				fs.DurationVar(&d, "d", 0, "")
			}, Run: func(context.Context, []string) error { return nil }},
		}}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := p.Run(context.Background(), IO{Stdout: &out, Stderr: &errb}, args)
		return code, out.String(), errb.String()
	}
	if code, out, errs := run("deny", "--json"); code != ExitDenied || !strings.Contains(out, `"reasons": [`) || !strings.Contains(errs, "hint: rotate the key") ||
		!strings.Contains(errs, "t deny: denied") {
		t.Errorf("deny: %d %q %q", code, out, errs)
	}
	jsonOut = false
	if code, out, errs := run("fail"); code != ExitError || out != "" || errs != "t fail: broken\n" {
		t.Errorf("fail: %d %q %q", code, out, errs)
	}
	if code, _, _ := run("num", "--n", "7", "--d", "90s"); code != 0 || n != 7 || d != 90*time.Second {
		t.Errorf("num: exit %d, n=%d d=%v", code, n, d)
	}
	if code, _, errs := run("num", "--n", "seven"); code != ExitUsage || !strings.Contains(errs, "invalid argument") {
		t.Errorf("num --n seven: %d %q", code, errs)
	}
}

func TestParseHexLines(t *testing.T) {
	const in = "# trusted keys\n\n  aabbcc  \n# another\nddeeff\n"
	got, err := ParseHexLines[[]byte]([]byte(in), "keys.txt", "key", 3, 3)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], []byte{0xaa, 0xbb, 0xcc}) || !bytes.Equal(got[1], []byte{0xdd, 0xee, 0xff}) {
		t.Fatalf("ParseHexLines = %x, %v", got, err)
	}
	if got, err := ParseHexLines[[]byte](nil, "empty", "key", 1, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty input: %x, %v", got, err)
	}
	for _, tc := range []struct {
		in       string
		min, max int
		want     string
	}{
		{"aabbcc\nzz\n", 1, 0, "keys.txt line 2: not a hex key"},
		{"aabbcc\nabc\n", 1, 0, "keys.txt line 2: not a hex key"}, // odd length
		{"aabb\n", 3, 0, "keys.txt line 1: not a hex key"},        // too short
		{"aabbccdd\n", 1, 3, "keys.txt line 1: not a hex key"},    // too long
	} {
		if _, err := ParseHexLines[[]byte]([]byte(tc.in), "keys.txt", "key", tc.min, tc.max); err == nil || err.Error() != tc.want {
			t.Errorf("ParseHexLines(%q, %d, %d): err = %v, want %q", tc.in, tc.min, tc.max, err, tc.want)
		}
	}
	// max 0 is no bound.
	if got, err := ParseHexLines[[]byte]([]byte(strings.Repeat("ab", 5000)), "big", "key", 1, 0); err != nil || len(got) != 1 || len(got[0]) != 5000 {
		t.Fatalf("unbounded: %d values, %v", len(got), err)
	}
}
