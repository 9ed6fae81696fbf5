package api

import (
	"strings"
	"testing"
	"time"
)

func TestRecoveryWitnessValidate(t *testing.T) {
	h := make([]byte, 32)
	id := strings.Repeat("ab", 32)
	at := time.Unix(1_800_000_000, 0).UTC()
	ok := RecoveryWitness{RecoveryID: id, Checkpoint: "c", LeafIndex: 3, Proof: [][]byte{h}, WitnessedAt: at, NotBefore: at.Add(time.Hour)}
	mut := func(f func(*RecoveryWitness)) RecoveryWitness { w := ok; f(&w); return w }
	for _, c := range []struct {
		desc    string
		v       RecoveryWitness
		wantErr string
	}{
		{"ok", ok, ""},
		{"bad id", mut(func(w *RecoveryWitness) { w.RecoveryID = "xyz" }), "recovery_id"},
		{"no checkpoint", mut(func(w *RecoveryWitness) { w.Checkpoint = "" }), "checkpoint must be"},
		{"huge checkpoint", mut(func(w *RecoveryWitness) { w.Checkpoint = strings.Repeat("x", MaxCheckpointSize+1) }), "checkpoint must be"},
		{"short hash", mut(func(w *RecoveryWitness) { w.Proof = [][]byte{h[:31]} }), "hash 0 is 31 bytes"},
		{"not before before witnessed", mut(func(w *RecoveryWitness) { w.NotBefore = at.Add(-time.Second) }), "is before witnessed_at"},
	} {
		err := c.v.Validate()
		if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: %v, want %q", c.desc, err, c.wantErr)
		}
	}
}
