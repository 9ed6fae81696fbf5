package translog_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/translog"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestParsePolicy: the c2sp.org/tlog-policy format, parsed strictly:
// every rule of the spec broken once is refused with the line named.
func TestParsePolicy(t *testing.T) {
	logKeys := translogtest.NewSigner(t, "example.com/log").VerifierKeys()
	w1, w2, w3 := translogtest.NewCosigner(t, "w1.example"), translogtest.NewCosigner(t, "w2.example"), translogtest.NewCosigner(t, "w3.example")
	head := "log " + logKeys[0] + "\nlog " + logKeys[1] + " https://example.com/log/\n" +
		"witness W1 " + w1.Key + "\nwitness W2 " + w2.Key + " https://w2.example/\n\twitness   W3\t" + w3.Key + "  \n"
	for _, tc := range []struct {
		desc, text, wantErr string
		quorum              string
		min                 int
	}{
		{"none", "quorum none\n", "", "none", 0},
		{"empty file", "", "no quorum line", "", 0},
		{"single witness with comments", "# a comment\n   # indented\n\n" + head + "quorum W2\n", "", "W2", 1},
		{"two of three", head + "group g 2 W1 W2 W3\nquorum g\n", "", "g", 2},
		{"nested", head + "group a any W1 W2\ngroup b all a W3\nquorum b\n", "", "b", 2},
		{"all", head + "group g all W1 W2 W3\nquorum g\n", "", "g", 3},
		{"no final newline", head + "quorum W1", "does not end with a newline", "", 0},
		{"carriage return", head + "quorum W1\r\n", "control character 0x0d", "", 0},
		{"NUL", head + "quorum\x00 W1\n", "control character 0x00", "", 0},
		{"unknown keyword", head + "witnesses X " + w1.Key + "\nquorum W1\n", `line 6: unknown keyword "witnesses"`, "", 0},
		{"two quorums", head + "quorum W1\nquorum W2\n", "line 7: a second quorum line", "", 0},
		{"quorum undefined", head + "quorum W9\n", `line 6: quorum "W9" is not a witness`, "", 0},
		{"quorum before definition", "quorum W1\n" + head, `line 1: quorum "W1"`, "", 0},
		{"group before member", "group g any W1\n" + head + "quorum g\n", `line 1: group g: "W1" is not`, "", 0},
		{"member twice in a group", head + "group g 2 W1 W1\nquorum g\n", `"W1" is already a member`, "", 0},
		{"member of two groups", head + "group a any W1 W2\ngroup b any W1 W3\nquorum b\n", `line 7: group b: "W1" is already a member`, "", 0},
		{"none as member", head + "group g any none W1\nquorum g\n", `"none" cannot be a member`, "", 0},
		{"threshold zero", head + "group g 0 W1 W2\nquorum g\n", `threshold "0"`, "", 0},
		{"threshold above n", head + "group g 3 W1 W2\nquorum g\n", `threshold "3"`, "", 0},
		{"threshold leading zero", head + "group g 02 W1 W2\nquorum g\n", `threshold "02"`, "", 0},
		{"threshold signed", head + "group g +1 W1 W2\nquorum g\n", `threshold "+1"`, "", 0},
		{"group without members", head + "group g any\nquorum g\n", "want group", "", 0},
		{"name twice", head + "group W1 any W2\nquorum W1\n", `"W1" is already defined`, "", 0},
		{"none redefined", "witness none " + w1.Key + "\nquorum none\n", `"none" is predefined`, "", 0},
		{"duplicate witness key", head + "witness W4 " + w1.Key + "\nquorum W1\n", "its key is already listed (witness W1)", "", 0},
		{"duplicate log key", head + "log " + logKeys[0] + "\nquorum W1\n", "the log key is already listed", "", 0},
		{"log key as witness", "witness L " + logKeys[0] + "\nquorum L\n", "signature type 0x01", "", 0},
		{"witness key as log", "log " + w1.Key + "\nquorum none\n", "signature type 0x04", "", 0},
		{"bad key", "witness W x+00000000+AAAA\nquorum W\n", "line 1: witness W", "", 0},
		{"witness line too long", "witness W " + w1.Key + " u extra\nquorum W\n", "want witness", "", 0},
	} {
		p, err := translog.ParsePolicy([]byte(tc.text))
		if tc.wantErr != "" {
			if !errors.Is(err, translog.ErrPolicy) && !errors.Is(err, translog.ErrBadKey) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want an error with %q", tc.desc, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.desc, err)
			continue
		}
		if p.Quorum != tc.quorum || p.MinWitnesses() != tc.min || p.RequiresWitnesses() != (tc.min > 0) {
			t.Errorf("%s: quorum %q min %d, want %q %d", tc.desc, p.Quorum, p.MinWitnesses(), tc.quorum, tc.min)
		}
	}
	p, err := translog.ParsePolicy([]byte(head + "group a any W1 W2\ngroup b all a W3\nquorum b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Logs) != 2 || len(p.Witnesses) != 3 || p.Witnesses[1].URL != "https://w2.example/" || p.Witnesses[2].Name != "W3" {
		t.Fatalf("parsed %+v", p)
	}
	for _, tc := range []struct {
		have []int
		want bool
	}{{nil, false}, {[]int{0}, false}, {[]int{2}, false}, {[]int{0, 2}, true}, {[]int{1, 2}, true}, {[]int{0, 1}, false}, {[]int{0, 1, 2}, true}} {
		got := p.Satisfied(func(i int) bool {
			for _, h := range tc.have {
				if h == i {
					return true
				}
			}
			return false
		})
		if got != tc.want {
			t.Errorf("cosigned by %v: satisfied %v, want %v", tc.have, got, tc.want)
		}
	}
}

// TestCosignatures: a witness's valid cosignature is found with its
// timestamp; a line of its key that does not verify (another checkpoint's,
// a flipped byte) is present but not valid; other witnesses are absent.
func TestCosignatures(t *testing.T) {
	s := translogtest.NewSigner(t, "example.com/log")
	c1, _ := s.Sign(translog.Checkpoint{Origin: "example.com/log", Size: 3})
	c2, _ := s.Sign(translog.Checkpoint{Origin: "example.com/log", Size: 4})
	w1, w2, w3 := translogtest.NewCosigner(t, "w1.example"), translogtest.NewCosigner(t, "w2.example"), translogtest.NewCosigner(t, "w3.example")
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	signed := w2.Cosign(w1.Cosign(c1, at.Unix()), at.Unix()+5)
	// w3's cosignature of another checkpoint, moved onto this one.
	other := w3.Cosign(c2, at.Unix())
	signed = append(signed, other[strings.LastIndex(string(other), "— "):]...)
	got, err := translog.Cosignatures(signed, []string{w1.Key, w2.Key, w3.Key, translogtest.NewCosigner(t, "w4.example").Key})
	if err != nil {
		t.Fatal(err)
	}
	want := []translog.Cosignature{{Valid: true, Present: true, Time: at}, {Valid: true, Present: true, Time: at.Add(5 * time.Second)}, {Present: true}, {}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("witness %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// The log's own keys are no witness keys.
	if _, err := translog.Cosignatures(signed, s.VerifierKeys()[:1]); !errors.Is(err, translog.ErrBadKey) {
		t.Errorf("a log key as a witness key: %v", err)
	}
}

// TestCheckLogKeys: a device's configured pin must be log keys of the
// origin it names.
func TestCheckLogKeys(t *testing.T) {
	keys := translogtest.NewSigner(t, "example.com/log").VerifierKeys()
	w := translogtest.NewCosigner(t, "example.com/log")
	for _, tc := range []struct {
		desc, origin string
		keys         []string
		wantErr      string
	}{
		{"both keys", "example.com/log", keys, ""},
		{"no key", "example.com/log", nil, "no verifier keys"},
		{"another origin", "example.com/other", keys, `named "example.com/log" for the log "example.com/other"`},
		{"a witness key", "example.com/log", []string{w.Key}, "not a log key"},
		{"garbage", "example.com/log", []string{"example.com/log+00000000+!!"}, "bad base64"},
	} {
		err := translog.CheckLogKeys(tc.origin, tc.keys)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (!errors.Is(err, translog.ErrBadKey) || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: %v, want %q", tc.desc, err, tc.wantErr)
		}
	}
}

// FuzzParsePolicy: no input panics the parser, and every policy it
// accepts is coherent: all its witnesses meet its quorum, none of them
// meets it only when it requires none, and the least number of witnesses
// it needs is at most how many it lists.
func FuzzParsePolicy(f *testing.F) {
	w1, w2 := translogtest.NewCosigner(f, "w1.example"), translogtest.NewCosigner(f, "w2.example")
	f.Add([]byte("quorum none\n"))
	f.Add([]byte("witness A " + w1.Key + "\nwitness B " + w2.Key + "\ngroup g any A B\nquorum g\n"))
	f.Add([]byte("witness A " + w1.Key + "\nwitness B " + w2.Key + "\ngroup g 2 A B\ngroup h all g\nquorum h\n# c\n"))
	f.Add([]byte("\tgroup x 1 y\n\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := translog.ParsePolicy(b)
		if err != nil {
			return
		}
		all := p.Satisfied(func(int) bool { return true })
		none := p.Satisfied(func(int) bool { return false })
		if !all || none == p.RequiresWitnesses() || p.MinWitnesses() > len(p.Witnesses) {
			t.Fatalf("incoherent policy %q: all %v none %v min %d of %d", b, all, none, p.MinWitnesses(), len(p.Witnesses))
		}
	})
}
