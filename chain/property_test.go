package chain

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPropertyRandomSequences runs random valid operation sequences and
// checks after every link that:
//   - the active set equals adds minus revocations and retirements;
//   - every active device has an approval path to the genesis device or a
//     recovery, through devices that were active when they approved;
//   - Apply left the previous state unchanged (states are immutable);
//
// between legal steps it tries illegal ones (a revoked device signing, a
// revoked device revoked again, a veto or recover with nothing pending, a
// recovery-key revocation) and checks each is refused with the error that
// names its rule, leaving the state as it was; and at the end that VerifyChain over the whole chain reaches the same head
// and active set as the step-by-step Apply calls.
func TestPropertyRandomSequences(t *testing.T) {
	steps := 40
	if testing.Short() {
		steps = 15
	}
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runRandomSequence(t, seed, steps)
		})
	}
}

func runRandomSequence(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 0x656e69676d))
	w := newWorld(fmt.Sprintf("prop%d", seed))
	added := map[string]bool{}
	gone := map[string]bool{} // revoked or retired
	next := 0
	fresh := func() string { next++; return fmt.Sprintf("D%d", next) }
	active := func() []string {
		var out []string
		for n := range added {
			if !gone[n] {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }

	run := func(stmt string) {
		t.Helper()
		before := w.st
		var snap []DeviceRecord
		var snapHead Head
		if before != nil {
			snap, snapHead = before.Active(), before.Head()
		}
		if err := w.step(stmt); err != nil {
			t.Fatalf("%q: %v", stmt, err)
		}
		if before != nil && (before.Head() != snapHead || !slices.EqualFunc(before.Active(), snap, func(a, b DeviceRecord) bool { return a.ID == b.ID && a.Identity.Equal(b.Identity) })) {
			t.Fatalf("%q: Apply changed its input state", stmt)
		}
	}

	illegal := 0
	run("genesis G")
	added["G"] = true
	for i := 0; i < steps; i++ {
		act := active()
		op := rng.IntN(10)
		if len(act) == 0 {
			op = 9 // only recovery can bring the account back
		}
		switch {
		case op <= 2 && len(act) < MaxDevices:
			n := fresh()
			run(fmt.Sprintf("add %s by %s", n, pick(act)))
			added[n] = true
		case op == 3:
			target := pick(act)
			if rng.IntN(2) == 0 {
				run(fmt.Sprintf("revoke %s by %s", target, pick(act)))
				gone[target] = true
			} else {
				// An illegal step: the recovery key never revokes.
				before := w.st
				if err := w.step(fmt.Sprintf("revoke %s by recovery", target)); !errors.Is(err, ErrUnexpectedSignature) || w.st != before {
					t.Fatalf("revoke %s by recovery: err = %v (state changed: %v), want ErrUnexpectedSignature", target, err, w.st != before)
				}
			}
		case op == 4:
			run(fmt.Sprintf("rotate %s %s", pick(act), []string{"identity", "kem", ""}[rng.IntN(3)]))
		case op == 5:
			old, n := pick(act), fresh()
			run(fmt.Sprintf("replace %s with %s", old, n))
			gone[old], added[n] = true, true
		case op == 6:
			run(fmt.Sprintf("rotate-recovery by %s", pick(act)))
		case op == 7:
			n := fresh()
			run("request " + n)
			run("veto by " + pick(act))
		default:
			n := fresh()
			run("request " + n)
			run("wait 24h")
			run("recover " + n)
			added[n] = true
		}
		checkInvariants(t, w, active())
		if rng.IntN(3) == 0 && tryIllegal(t, w, rng, active(), gone, fresh) {
			illegal++
		}
	}

	if illegal < steps/10 {
		t.Fatalf("only %d illegal steps tried in %d", illegal, steps)
	}
	st, err := VerifyChain(nil, w.links, w.now)
	if err != nil {
		t.Fatalf("VerifyChain over the generated chain: %v", err)
	}
	if st.Head() != w.st.Head() || !slices.Equal(ids(st.Active()), ids(w.st.Active())) {
		t.Fatal("VerifyChain and step-by-step Apply disagree")
	}
}

// tryIllegal plays one step the rules forbid, chosen at random from those
// the current state allows to try, and checks that it is refused with the
// error that names the rule and leaves the state as it was.
func tryIllegal(t *testing.T, w *world, rng *rand.Rand, act []string, gone map[string]bool, fresh func() string) bool {
	t.Helper()
	var goneList []string
	for n := range gone {
		goneList = append(goneList, n)
	}
	slices.Sort(goneList)
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	_, pending := w.st.PendingRecovery()
	type try struct {
		stmt string
		want error
		or   error // when the step may name the rule differently
	}
	var tries []try
	if len(goneList) > 0 && len(act) > 0 {
		tries = append(tries,
			try{fmt.Sprintf("add %s by %s", fresh(), pick(goneList)), ErrSignerRevoked, nil},
			try{fmt.Sprintf("revoke %s by %s", pick(goneList), pick(act)), ErrDeviceNotActive, nil},
			try{fmt.Sprintf("revoke %s by %s", pick(act), pick(goneList)), ErrSignerRevoked, nil},
			try{fmt.Sprintf("rotate %s", pick(goneList)), ErrSignerRevoked, nil})
	}
	if !pending && len(act) > 0 {
		tries = append(tries,
			try{"veto by " + pick(act), ErrNoPendingRecovery, nil},
			// (the world's recover names the last request: one that was
			// vetoed or completed, or none)
			try{"recover " + fresh(), ErrNoPendingRecovery, ErrRecoveryVetoed})
	}
	if len(act) > 0 {
		tries = append(tries, try{fmt.Sprintf("revoke %s by recovery", pick(act)), ErrUnexpectedSignature, nil})
	}
	if len(tries) == 0 {
		return false
	}
	tr := pick2(rng, tries)
	before, n := w.st, len(w.links)
	err := w.step(tr.stmt)
	named := errors.Is(err, tr.want) || tr.or != nil && errors.Is(err, tr.or)
	if !named || w.st != before || len(w.links) != n {
		t.Fatalf("illegal step %q: err = %v, want %v, and the state unchanged (changed: %v)", tr.stmt, err, tr.want, w.st != before)
	}
	return true
}

func pick2[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func ids(rs []DeviceRecord) []DeviceID {
	out := make([]DeviceID, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func checkInvariants(t *testing.T, w *world, wantActive []string) {
	t.Helper()
	var got []string
	for _, r := range w.st.Active() {
		got = append(got, w.nameOf(r.ID))
	}
	slices.Sort(got)
	if !slices.Equal(got, wantActive) {
		t.Fatalf("active = %v, want adds - revocations - retirements = %v", got, wantActive)
	}
	if w.st.ActiveCount() != len(wantActive) {
		t.Fatalf("ActiveCount = %d, want %d", w.st.ActiveCount(), len(wantActive))
	}
	for _, r := range w.st.Active() {
		if err := approvalPath(w.st, r, 0); err != nil {
			t.Fatalf("device %s: %v", w.nameOf(r.ID), err)
		}
	}
}

// approvalPath follows who approved r back to the genesis device or a
// recovery.
func approvalPath(s *State, r DeviceRecord, depth int) error {
	if depth > len(s.devices) {
		return fmt.Errorf("approval cycle")
	}
	switch r.ApprovedBy.Kind {
	case ByGenesis:
		if r.AddedSeq != 0 || r.AddedBy != TypeGenesis {
			return fmt.Errorf("genesis approval on a device added at seq %d by %s", r.AddedSeq, r.AddedBy)
		}
		return nil
	case ByRecovery:
		if r.AddedBy != TypeRecover {
			return fmt.Errorf("recovery approval on a device added by %s", r.AddedBy)
		}
		return nil
	case ByDevice:
		a, ok := s.Device(r.ApprovedBy.Device)
		if !ok {
			return fmt.Errorf("approver %s unknown", r.ApprovedBy.Device)
		}
		if a.AddedSeq >= r.AddedSeq {
			return fmt.Errorf("approver %s added at seq %d, after the device (seq %d)", a.ID, a.AddedSeq, r.AddedSeq)
		}
		if a.Status != StatusActive && a.EndedSeq < r.AddedSeq {
			return fmt.Errorf("approver %s ended at seq %d, before approving at seq %d", a.ID, a.EndedSeq, r.AddedSeq)
		}
		return approvalPath(s, a, depth+1)
	}
	return fmt.Errorf("unknown approval kind %d", r.ApprovedBy.Kind)
}
