package testkit

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

// Unannotate turns an annotated byte layout, as golden-bytes tests write
// them, into bytes. A token is hex (spaces ignored), "xx*N" for N copies
// of byte xx, or "quoted text" for its UTF-8 bytes; "//" starts a comment.
func Unannotate(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		for len(strings.TrimSpace(line)) > 0 {
			line = strings.TrimSpace(line)
			if line[0] == '"' {
				end := strings.Index(line[1:], `"`) + 1
				out = append(out, line[1:end]...)
				line = line[end+1:]
				continue
			}
			tok, rest, _ := strings.Cut(line, " ")
			line = rest
			if b, n, ok := strings.Cut(tok, "*"); ok {
				v, err1 := hex.DecodeString(b)
				k, err2 := strconv.Atoi(n)
				if err1 != nil || err2 != nil || len(v) != 1 {
					t.Fatalf("bad repeat %q", tok)
				}
				out = append(out, bytes.Repeat(v, k)...)
				continue
			}
			v, err := hex.DecodeString(tok)
			if err != nil {
				t.Fatalf("bad hex %q", tok)
			}
			out = append(out, v...)
		}
	}
	return out
}
