package clikit

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// ParseHexLines parses the contents b of the file name: hex values, one a
// line, blank lines and lines starting with # skipped. Each value has at
// least min bytes and, when max > 0, at most max; what names a value in
// errors ("attestation key").
func ParseHexLines[T ~[]byte](b []byte, name, what string, min, max int) ([]T, error) {
	var out []T
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := hex.DecodeString(line)
		if err != nil || len(v) < min || max > 0 && len(v) > max {
			return nil, fmt.Errorf("%s line %d: not a hex %s", name, i+1, what)
		}
		out = append(out, T(v))
	}
	return out, nil
}
