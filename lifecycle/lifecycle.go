// Package lifecycle is the pure state machine of one key (DESIGN §5):
//
//	created ──activate──▶ active ──supersede──▶ superseded ──retire──▶ retired
//	   │                    │                                   ▲
//	   └──────retire────────┴────────────retire─────────────────┘
//	any state except revoked ──revoke──▶ revoked
//
// Every transition is an [Event] that carries its [Cause] and time. Illegal
// transitions return an error; they are never no-ops. [Key.Allows] says which
// operations a state permits: created keys may only prove possession for
// their own enrollment, active keys do everything, superseded keys only
// decrypt and verify until their grace period ends, retired and revoked keys
// nothing (their material is destroyed by the keystore).
package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// State is a key's lifecycle state. Values are persisted: never reorder.
type State uint8

// Key states. The zero value is invalid.
const (
	Created State = iota + 1
	Active
	Superseded
	Retired
	Revoked
)

var stateNames = [...]string{"", "created", "active", "superseded", "retired", "revoked"}

func (s State) String() string { return nameOf(stateNames[:], s, "state") }

// Valid reports whether s is a known state.
func (s State) Valid() bool { return s >= Created && s <= Revoked }

// ParseState parses a state name.
func ParseState(name string) (State, bool) { return valueOf[State](stateNames[:], name) }

// HoldsMaterial reports whether a key in this state still has private
// material; retired and revoked keys have had it destroyed.
func (s State) HoldsMaterial() bool { return s == Created || s == Active || s == Superseded }

// Cause is why a lifecycle event happened (the model's lifecycle events).
// Values are persisted: never reorder.
type Cause uint8

// Causes.
const (
	AccountSetup Cause = iota + 1
	DeviceEnrollment
	MessagingSetup
	CallSetup
	Rotation
	Replacement
	Recovery
	Revocation
	Retirement
	Expiry // a TTL-bounded key reached its end
)

var causeNames = [...]string{"", "account_setup", "device_enrollment", "messaging_setup",
	"call_setup", "rotation", "replacement", "recovery", "revocation", "retirement", "expiry"}

func (c Cause) String() string { return nameOf(causeNames[:], c, "cause") }

// Valid reports whether c is a known cause.
func (c Cause) Valid() bool { return c >= AccountSetup && c <= Expiry }

// ParseCause parses a cause name.
func ParseCause(name string) (Cause, bool) { return valueOf[Cause](causeNames[:], name) }

// Kind is the kind of an event. Values are persisted: never reorder.
type Kind uint8

// Event kinds.
const (
	Create Kind = iota + 1
	Activate
	Supersede
	Retire
	Revoke
)

var kindNames = [...]string{"", "create", "activate", "supersede", "retire", "revoke"}

func (k Kind) String() string { return nameOf(kindNames[:], k, "kind") }

// causesFor lists the causes each event kind accepts.
var causesFor = map[Kind][]Cause{
	Create:    {AccountSetup, DeviceEnrollment, MessagingSetup, CallSetup, Rotation, Replacement, Recovery},
	Activate:  {AccountSetup, DeviceEnrollment, MessagingSetup, CallSetup, Rotation, Replacement, Recovery},
	Supersede: {Rotation, Replacement, Recovery},
	Retire:    {Retirement, Expiry, Replacement, Rotation},
	Revoke:    {Revocation},
}

// Event is one lifecycle transition.
type Event struct {
	Kind  Kind
	Cause Cause
	At    time.Time
	// GraceUntil is required for Supersede: until then the superseded key
	// may still decrypt and verify. It must not be before At.
	GraceUntil time.Time
}

// Key is the lifecycle record of one key. The zero value is a key that does
// not exist yet; its only legal event is Create.
type Key struct {
	State      State
	Cause      Cause     // cause of the last event
	Created    time.Time // Create event time
	Changed    time.Time // last event time
	GraceUntil time.Time // set while Superseded
}

// Errors. Callers match them with errors.Is; the returned errors wrap them
// with the details.
var (
	// ErrTransition reports an event that the current state does not permit.
	ErrTransition = errors.New("lifecycle: illegal transition")
	// ErrCause reports an event whose cause does not fit its kind.
	ErrCause = errors.New("lifecycle: cause not allowed for this event")
	// ErrTime reports an event dated before the key's previous event, or a
	// malformed grace period.
	ErrTime = errors.New("lifecycle: event time out of order")
	// ErrNotAllowed reports an operation the key's state forbids.
	ErrNotAllowed = errors.New("lifecycle: operation not allowed in this key state")
)

// New applies a Create event to the zero key.
func New(cause Cause, at time.Time) (Key, error) {
	return Key{}.Apply(Event{Kind: Create, Cause: cause, At: at})
}

// Apply returns the key after ev, or an error if ev is illegal in k's state.
// k is never modified.
func (k Key) Apply(ev Event) (Key, error) {
	if !allowedCause(ev.Kind, ev.Cause) {
		return k, fmt.Errorf("%w: %s by %s", ErrCause, ev.Kind, ev.Cause)
	}
	if ev.At.IsZero() {
		return k, fmt.Errorf("%w: event has no time", ErrTime)
	}
	if k.State != 0 && ev.At.Before(k.Changed) {
		return k, fmt.Errorf("%w: %s at %s is before the previous event at %s", ErrTime, ev.Kind, ev.At.UTC().Format(time.RFC3339), k.Changed.UTC().Format(time.RFC3339))
	}
	next := k
	next.Cause, next.Changed = ev.Cause, ev.At
	switch {
	case ev.Kind == Create && k.State == 0:
		next.State, next.Created = Created, ev.At
	case ev.Kind == Activate && k.State == Created:
		next.State = Active
	case ev.Kind == Supersede && k.State == Active:
		if ev.GraceUntil.Before(ev.At) {
			return k, fmt.Errorf("%w: grace period ends before the supersede event", ErrTime)
		}
		next.State, next.GraceUntil = Superseded, ev.GraceUntil
	case ev.Kind == Retire && (k.State == Created || k.State == Active || k.State == Superseded):
		next.State, next.GraceUntil = Retired, time.Time{}
	case ev.Kind == Revoke && k.State != 0 && k.State != Revoked:
		next.State, next.GraceUntil = Revoked, time.Time{}
	default:
		from := "nonexistent"
		if k.State != 0 {
			from = k.State.String()
		}
		return k, fmt.Errorf("%w: cannot %s a %s key", ErrTransition, ev.Kind, from)
	}
	return next, nil
}

func allowedCause(kind Kind, c Cause) bool {
	for _, x := range causesFor[kind] {
		if x == c {
			return true
		}
	}
	return false
}

// Op is an operation with a key's private material.
type Op uint8

// Operations. Values are persisted in audit logs: never reorder.
const (
	ProvePossession Op = iota + 1 // sign one's own enrollment / rotation statement
	Sign
	Decrypt
	Encrypt
	Verify // MAC verification or opening with a symmetric key
)

var opNames = [...]string{"", "prove_possession", "sign", "decrypt", "encrypt", "verify"}

func (o Op) String() string {
	if o >= ProvePossession && o <= Verify {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Allows returns nil if a key in state k may perform op at now, or an error
// wrapping ErrNotAllowed that says why.
func (k Key) Allows(op Op, now time.Time) error {
	switch k.State {
	case Created:
		if op == ProvePossession {
			return nil
		}
	case Active:
		if op >= ProvePossession && op <= Verify {
			return nil
		}
	case Superseded:
		if op == Decrypt || op == Verify {
			if now.After(k.GraceUntil) {
				return fmt.Errorf("%w: superseded key's grace period ended at %s", ErrNotAllowed, k.GraceUntil.UTC().Format(time.RFC3339))
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not allowed on a %s key", ErrNotAllowed, op, k.State)
}
