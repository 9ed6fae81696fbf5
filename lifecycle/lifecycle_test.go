package lifecycle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestHappyPath(t *testing.T) {
	k, err := New(AccountSetup, t0)
	if err != nil {
		t.Fatal(err)
	}
	steps := []Event{
		{Kind: Activate, Cause: AccountSetup, At: t0.Add(time.Second)},
		{Kind: Supersede, Cause: Rotation, At: t0.Add(time.Hour), GraceUntil: t0.Add(48 * time.Hour)},
		{Kind: Retire, Cause: Retirement, At: t0.Add(49 * time.Hour)},
		{Kind: Revoke, Cause: Revocation, At: t0.Add(50 * time.Hour)},
	}
	want := []State{Active, Superseded, Retired, Revoked}
	for i, ev := range steps {
		if k, err = k.Apply(ev); err != nil {
			t.Fatalf("step %d (%s): %v", i, ev.Kind, err)
		}
		if k.State != want[i] || k.Cause != ev.Cause || !k.Changed.Equal(ev.At) {
			t.Fatalf("step %d: got %+v", i, k)
		}
	}
}

func TestIllegal(t *testing.T) {
	created, _ := New(DeviceEnrollment, t0)
	active, _ := created.Apply(Event{Kind: Activate, Cause: DeviceEnrollment, At: t0})
	revoked, _ := active.Apply(Event{Kind: Revoke, Cause: Revocation, At: t0})
	cases := []struct {
		desc string
		k    Key
		ev   Event
		want error
	}{
		{"activate nonexistent", Key{}, Event{Kind: Activate, Cause: AccountSetup, At: t0}, ErrTransition},
		{"create twice", created, Event{Kind: Create, Cause: AccountSetup, At: t0}, ErrTransition},
		{"activate twice", active, Event{Kind: Activate, Cause: AccountSetup, At: t0}, ErrTransition},
		{"supersede created", created, Event{Kind: Supersede, Cause: Rotation, At: t0, GraceUntil: t0}, ErrTransition},
		{"revoke twice", revoked, Event{Kind: Revoke, Cause: Revocation, At: t0}, ErrTransition},
		{"reactivate revoked", revoked, Event{Kind: Activate, Cause: Recovery, At: t0}, ErrTransition},
		{"revoke with wrong cause", active, Event{Kind: Revoke, Cause: Rotation, At: t0}, ErrCause},
		{"unknown cause", active, Event{Kind: Retire, Cause: 99, At: t0}, ErrCause},
		{"unknown kind", active, Event{Kind: 42, Cause: Rotation, At: t0}, ErrCause},
		{"time backwards", active, Event{Kind: Retire, Cause: Retirement, At: t0.Add(-time.Second)}, ErrTime},
		{"no time", active, Event{Kind: Retire, Cause: Retirement}, ErrTime},
		{"grace before event", active, Event{Kind: Supersede, Cause: Rotation, At: t0, GraceUntil: t0.Add(-time.Second)}, ErrTime},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			got, err := c.k.Apply(c.ev)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if got != c.k {
				t.Fatal("failed Apply changed the key")
			}
		})
	}
}

func TestAllows(t *testing.T) {
	created, _ := New(AccountSetup, t0)
	active, _ := created.Apply(Event{Kind: Activate, Cause: AccountSetup, At: t0})
	super, _ := active.Apply(Event{Kind: Supersede, Cause: Rotation, At: t0, GraceUntil: t0.Add(time.Hour)})
	retired, _ := super.Apply(Event{Kind: Retire, Cause: Retirement, At: t0.Add(2 * time.Hour)})
	revoked, _ := active.Apply(Event{Kind: Revoke, Cause: Revocation, At: t0})
	type row struct {
		k    Key
		now  time.Time
		op   Op
		want bool
	}
	rows := []row{
		{created, t0, ProvePossession, true}, {created, t0, Sign, false}, {created, t0, Decrypt, false},
		{active, t0, Sign, true}, {active, t0, Decrypt, true}, {active, t0, Encrypt, true}, {active, t0, ProvePossession, true},
		{super, t0, Decrypt, true}, {super, t0, Verify, true}, {super, t0, Sign, false}, {super, t0, Encrypt, false},
		{super, t0.Add(time.Hour + time.Second), Decrypt, false},
		{active, t0, Op(0), false}, {active, t0, Op(77), false},
	}
	for _, op := range []Op{ProvePossession, Sign, Decrypt, Encrypt, Verify} {
		rows = append(rows, row{retired, t0, op, false}, row{revoked, t0, op, false})
	}
	for _, r := range rows {
		err := r.k.Allows(r.op, r.now)
		if (err == nil) != r.want {
			t.Errorf("%s key, %s at +%s: err = %v, want allowed=%v", r.k.State, r.op, r.now.Sub(t0), err, r.want)
		}
		if err != nil && !errors.Is(err, ErrNotAllowed) {
			t.Errorf("error does not wrap ErrNotAllowed: %v", err)
		}
	}
}

// legal is the transition table written out independently of Apply.
var legal = map[State][]Kind{
	0:          {Create},
	Created:    {Activate, Retire, Revoke},
	Active:     {Supersede, Retire, Revoke},
	Superseded: {Retire, Revoke},
	Retired:    {Revoke},
	Revoked:    {},
}

// Property: over random event sequences, Apply accepts exactly the legal
// transitions, revoked is absorbing, times never go backwards, and keys
// without material allow nothing.
func TestRandomSequences(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	kinds := []Kind{Create, Activate, Supersede, Retire, Revoke}
	for seq := 0; seq < 5000; seq++ {
		var k Key
		at := t0
		for step := 0; step < 12; step++ {
			kind := kinds[r.IntN(len(kinds))]
			var cause Cause
			if r.IntN(5) == 0 {
				cause = Cause(r.IntN(12)) // sometimes a wrong or invalid cause
			} else {
				cs := causesFor[kind]
				cause = cs[r.IntN(len(cs))]
			}
			at = at.Add(time.Duration(r.IntN(3)-1) * time.Minute) // sometimes backwards
			ev := Event{Kind: kind, Cause: cause, At: at, GraceUntil: at.Add(time.Duration(r.IntN(120)-10) * time.Minute)}
			next, err := k.Apply(ev)
			isLegal := false
			for _, l := range legal[k.State] {
				isLegal = isLegal || l == kind
			}
			okCause := allowedCause(kind, cause)
			okTime := k.State == 0 || !at.Before(k.Changed)
			okGrace := kind != Supersede || !ev.GraceUntil.Before(at)
			wantOK := isLegal && okCause && okTime && okGrace
			if (err == nil) != wantOK {
				t.Fatalf("seq %d step %d: %s %s by %s: err=%v, want ok=%v", seq, step, k.State, kind, cause, err, wantOK)
			}
			if err != nil {
				if next != k {
					t.Fatal("failed Apply changed the key")
				}
				continue
			}
			if k.State == Revoked {
				t.Fatal("left the revoked state")
			}
			if next.Changed.Before(k.Changed) {
				t.Fatal("time went backwards")
			}
			k = next
			if !k.State.HoldsMaterial() {
				for op := ProvePossession; op <= Verify; op++ {
					if k.Allows(op, at) == nil {
						t.Fatalf("%s key allows %s", k.State, op)
					}
				}
			}
		}
	}
}

func TestNamesRoundTrip(t *testing.T) {
	for s := Created; s <= Revoked; s++ {
		if got, ok := ParseState(s.String()); !ok || got != s {
			t.Errorf("state %v", s)
		}
	}
	for c := AccountSetup; c <= Expiry; c++ {
		if got, ok := ParseCause(c.String()); !ok || got != c {
			t.Errorf("cause %v", c)
		}
	}
	for _, name := range []string{"bogus", "", "state(0)"} {
		if _, ok := ParseState(name); ok {
			t.Errorf("parsed the state %q", name)
		}
		if _, ok := ParseCause(name); ok {
			t.Errorf("parsed the cause %q", name)
		}
	}
	// Values out of range print as numbers; every kind has its name.
	for v, want := range map[fmt.Stringer]string{State(0): "state(0)", Revoked + 1: "state(6)", Cause(0): "cause(0)",
		Expiry + 1: "cause(11)", Kind(0): "kind(0)", Revoke + 1: "kind(6)", Create: "create", Revoke: "revoke"} {
		if got := v.String(); got != want {
			t.Errorf("%#v prints %q, want %q", v, got, want)
		}
	}
}
