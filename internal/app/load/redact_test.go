package load

import (
	"testing"

	"github.com/enigm/enigm/internal/redact"
)

// The load tool's devices, run and prepared enrollments print no private
// key and no bearer token with any verb.
func TestLoadTypesRedacted(t *testing.T) {
	d, err := newDevice("alice/A")
	if err != nil {
		t.Fatal(err)
	}
	ed, err := redact.Field(d, "key", "ed")
	if err != nil {
		t.Fatal(err)
	}
	tok := "edt_0123456789abcdefghijklmnopqrstuv"
	acct := &account{name: "load-x-alice", first: d}
	for _, v := range []any{d, &run{recovery: d.key}, acct, &enrollment{acct: acct, token: tok}} {
		if err := redact.Leak(v, ed[:32], []byte(tok)); err != nil {
			t.Error(err)
		}
	}
}
