package redact

import (
	"fmt"
	"testing"
)

// Leak finds a secret in each encoding fmt can give it, so the table of
// TestNoSecretInAnyVerb cannot pass by looking for the wrong thing.
func TestLeakFindsSecrets(t *testing.T) {
	s := []byte("\x8f\x01leak-secret\xfe\x00\x7f!")
	type bare struct{ k []byte }
	type arr struct{ k [16]byte }
	type str struct{ k string }
	var a arr
	copy(a.k[:], s)
	for _, v := range []any{bare{s}, &bare{s}, a, &a, str{string(s)}, &str{string(s)}, s, string(s)} {
		for _, verb := range Verbs {
			if err := leak(v, []string{verb}, [][]byte{s}); err == nil {
				t.Errorf("%s of %T: leak not found", verb, v)
			}
		}
	}
	// A pointer in an unexported field hides its pointee from %v, not from
	// %s or %q (fmt prints the pointee's fields for a verb that does not
	// apply to pointers): why a struct holding one needs a Format too.
	type holder struct{ p *bare }
	for _, verb := range []string{"%s", "%q"} {
		if err := leak(holder{&bare{s}}, []string{verb}, [][]byte{s}); err == nil {
			t.Errorf("%s of a struct with a pointer to the secret: leak not found", verb)
		}
	}
	// And nothing is found in a redacted type.
	if err := Leak(redacted{s}, s); err != nil {
		t.Fatal(err)
	}
	if err := Leak(bare{}, s[:2]); err == nil {
		t.Fatal("a 2-byte secret was accepted")
	}
}

type redacted struct{ k []byte }

func (redacted) Format(f fmt.State, _ rune) { Format(f, "redacted") }
