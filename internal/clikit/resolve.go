package clikit

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of Pick.
var (
	ErrNoMatch   = errors.New("no match")
	ErrAmbiguous = errors.New("ambiguous")
)

// MinPrefix is the fewest hex digits of an id that Pick takes as a
// prefix: the same rule as key ids in the keystore.
const MinPrefix = 6

// Candidate is a thing the user may name by its id (hex) or its name.
type Candidate struct{ ID, Name string }

// Pick finds what ref names among cands: a whole id, an exact name, or a
// unique prefix of at least MinPrefix hex digits of an id. kind names the
// thing in errors ("device"). It returns the index in cands.
func Pick(kind, ref string, cands []Candidate) (int, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return -1, Usagef("give a %s id or name", kind)
	}
	low := strings.ToLower(ref)
	for i, c := range cands {
		if c.ID == low {
			return i, nil
		}
	}
	var named []int
	for i, c := range cands {
		if c.Name != "" && c.Name == ref {
			named = append(named, i)
		}
	}
	if len(named) == 1 {
		return named[0], nil
	}
	if len(named) > 1 {
		return -1, fmt.Errorf("%w: %d %ss are named %q (%s): give the id", ErrAmbiguous, len(named), kind, ref, ids(cands, named))
	}
	if !isHex(low) {
		return -1, fmt.Errorf("%w: no %s is named %q, and it is not a hex id", ErrNoMatch, kind, ref)
	}
	if len(low) < MinPrefix {
		return -1, fmt.Errorf("%w: give at least %d hex digits of the %s id", ErrNoMatch, MinPrefix, kind)
	}
	var found []int
	for i, c := range cands {
		if strings.HasPrefix(c.ID, low) {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 0:
		return -1, fmt.Errorf("%w: no %s id starts with %s", ErrNoMatch, kind, low)
	case 1:
		return found[0], nil
	}
	return -1, fmt.Errorf("%w: %s matches %d %ss (%s): give more digits", ErrAmbiguous, low, len(found), kind, ids(cands, found))
}

// PickID is Pick returning the id found.
func PickID(kind, ref string, cands []Candidate) (string, error) {
	i, err := Pick(kind, ref, cands)
	if err != nil {
		return "", err
	}
	return cands[i].ID, nil
}

func ids(cands []Candidate, idx []int) string {
	var s []string
	for _, i := range idx {
		s = append(s, cands[i].ID)
	}
	return strings.Join(s, ", ")
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return s != ""
}
