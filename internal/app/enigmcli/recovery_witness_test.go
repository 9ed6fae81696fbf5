package enigmcli

import (
	"strings"
	"testing"
	"time"

	"github.com/enigm/enigm/device"
)

// A pending recovery's witnessed times reach sync's and status's text
// (the exit-4 message and the RECOVERY line share witnessedText) and
// --json; without a witness policy nothing is added; a recovery the
// device could not verify as witnessed says why.
func TestRecoveryWitnessedOutput(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	base := device.RecoveryInfo{RequestID: strings.Repeat("ab", 32), Name: "thief", RequestedAt: at, NotBefore: at.Add(time.Hour)}

	plain := base
	if s := (&recoveryPendingError{&plain}).Error(); strings.Contains(s, "witnessed") {
		t.Fatalf("without a witness policy: %s", s)
	}
	if j := recoveryOut(&plain); j.WitnessedAt != "" || j.WitnessedNotBefore != "" || j.WitnessError != "" {
		t.Fatalf("json without a witness policy: %+v", j)
	}

	w := base
	w.Witnessed, w.WitnessedAt, w.WitnessedNotBefore = true, at.Add(time.Minute), at.Add(time.Hour+time.Minute)
	want := "first witnessed " + ts(w.WitnessedAt) + ", not before " + ts(w.WitnessedNotBefore) + " by witnessed time"
	if s := (&recoveryPendingError{&w}).Error(); !strings.Contains(s, want) {
		t.Fatalf("sync's message %q lacks %q", s, want)
	}
	if j := recoveryOut(&w); j.WitnessedAt != ts(w.WitnessedAt) || j.WitnessedNotBefore != ts(w.WitnessedNotBefore) {
		t.Fatalf("json: %+v", j)
	}

	e := base
	e.Witnessed, e.WitnessError = true, "the server offers no witnessed checkpoint that includes it"
	if s := witnessedText(&e); !strings.Contains(s, "not witnessed as this device requires yet: the server offers no witnessed checkpoint") {
		t.Fatalf("unverified: %q", s)
	}
	if j := recoveryOut(&e); j.WitnessError != e.WitnessError || j.WitnessedAt != "" {
		t.Fatalf("json unverified: %+v", j)
	}
}
