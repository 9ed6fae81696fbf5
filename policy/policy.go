// Package policy decides whether a key may be used, given what the key
// requires and a snapshot of the device's state. It is pure: no I/O, no
// clock, no globals; the caller passes the time.
//
// # Decisions
//
// [Decide] returns a [Decision] that either allows the use or denies it with
// every failing condition, as a set of [Reason] values whose string codes
// ([Reason.Code]) are stable and safe to show users, log and match in
// scripts. A revoked device is denied whatever the requirements say.
//
// # Defaults and tightening
//
// [Default] returns the per-class default requirements (DESIGN §4).
// [Requirements.Tighten] combines two requirement sets so that the result is
// at least as strict as both; organisations use it to tighten defaults and
// can never loosen them.
package policy

import (
	"strings"
	"time"
)

// Reason is one failing condition of a decision. Reasons are bit flags so a
// set of them ([Reasons]) costs no allocation on the hot path. Values are
// part of the audit log format: never reorder or reuse them.
type Reason uint32

// The reasons a use can be denied.
const (
	Locked              Reason = 1 << iota // keystore locked: wrapping keys not in memory
	AuthStale                              // no user authentication recent enough (or none at all)
	AuthMethod                             // last authentication used a method the key does not accept
	AppNotAuthorized                       // the app session / calling process is not authorized
	NotAssociated                          // the device is not an active member of its account
	Revoked                                // the device is revoked
	PostureInsufficient                    // OS security posture below the key's minimum
	OSTrustRequired                        // Enigm OS Trust state required but absent or not trusted
	AttestationRequired                    // remote attestation required but absent or failed
	KeyState                               // the key's lifecycle state forbids the operation
	AuditUnavailable                       // the decision could not be written to the audit log (disk full, read-only, I/O error)
	reasonEnd
)

var reasonCodes = [...]string{
	"locked", "auth_stale", "auth_method", "app_not_authorized", "not_associated",
	"revoked", "posture_insufficient", "os_trust_required", "attestation_required",
	"key_state", "audit_unavailable",
}

// Code returns the stable reason code, e.g. "auth_stale".
func (r Reason) Code() string {
	for i := range reasonCodes {
		if r == 1<<i {
			return reasonCodes[i]
		}
	}
	return "unknown"
}

func (r Reason) String() string { return r.Code() }

// ParseReason maps a code back to its Reason.
func ParseReason(code string) (Reason, bool) {
	for i, c := range reasonCodes {
		if c == code {
			return 1 << i, true
		}
	}
	return 0, false
}

// Reasons is a set of reasons.
type Reasons uint32

// Has reports whether r is in the set.
func (rs Reasons) Has(r Reason) bool { return uint32(rs)&uint32(r) != 0 }

// Add returns the set with r added.
func (rs Reasons) Add(r Reason) Reasons { return rs | Reasons(r) }

// Valid reports whether the set holds only known reasons.
func (rs Reasons) Valid() bool { return uint32(rs) < uint32(reasonEnd) }

// Codes returns the reason codes in a fixed order.
func (rs Reasons) Codes() []string {
	var out []string
	for i, c := range reasonCodes {
		if rs.Has(1 << i) {
			out = append(out, c)
		}
	}
	return out
}

func (rs Reasons) String() string { return strings.Join(rs.Codes(), ",") }

// Decision is the outcome of [Decide].
type Decision struct {
	// Reasons holds every failing condition; the use is allowed exactly
	// when it is empty.
	Reasons Reasons
}

// Allowed reports whether the use may proceed.
func (d Decision) Allowed() bool { return d.Reasons == 0 }

// Deny returns the decision with r added.
func (d Decision) Deny(r Reason) Decision { return Decision{d.Reasons.Add(r)} }

// PostureLevel orders OS security posture. The zero value is Unknown.
type PostureLevel uint8

// Posture levels. Compare with [PostureLevel.AtLeast], not with <.
const (
	PostureUnknown PostureLevel = iota
	PostureCompromised
	PostureDegraded
	PostureTrusted
)

var postureNames = [...]string{"unknown", "compromised", "degraded", "trusted"}

// rank orders levels: compromised < unknown < degraded < trusted.
func (l PostureLevel) rank() int {
	switch l {
	case PostureCompromised:
		return 0
	case PostureUnknown:
		return 1
	case PostureDegraded:
		return 2
	case PostureTrusted:
		return 3
	}
	return -1
}

// AtLeast reports whether l meets min. Unknown is below degraded and above
// compromised; an out-of-range level meets nothing.
func (l PostureLevel) AtLeast(min PostureLevel) bool {
	return l.rank() >= 0 && l.rank() >= min.rank()
}

func (l PostureLevel) String() string {
	if int(l) < len(postureNames) {
		return postureNames[l]
	}
	return "invalid"
}

// ParsePostureLevel parses a level name.
func ParsePostureLevel(s string) (PostureLevel, bool) {
	for i, n := range postureNames {
		if n == s {
			return PostureLevel(i), true
		}
	}
	return 0, false
}

// Posture is the OS security posture: a level and the facts behind it.
type Posture struct {
	Level PostureLevel
	// Facts are short, non-secret observations ("secure_boot=off",
	// "tracer_attached", …) that explain the level.
	Facts []string
}

// Association is the device's membership state in its account's chain.
type Association uint8

// Association states. The zero value is Unknown and is not associated.
const (
	AssociationUnknown Association = iota
	Unassociated                   // no account yet, or removed
	AssociationPending             // enrollment requested, not yet in the chain
	Associated                     // active device of its account
)

var associationNames = [...]string{"unknown", "unassociated", "pending", "associated"}

func (a Association) String() string {
	if int(a) < len(associationNames) {
		return associationNames[a]
	}
	return "invalid"
}

// OSTrust is the optional Enigm OS Trust (Trust Security Center) state.
type OSTrust struct {
	Deployed bool // Enigm OS Trust is present on this device
	Trusted  bool // its current posture verdict is trusted
}

// Attestation is the optional remote attestation outcome.
type Attestation struct {
	Applicable bool      // attestation applies to this device
	Verified   bool      // the last attestation verified
	At         time.Time // when it verified
}

// DeviceState is a snapshot of everything a decision depends on.
type DeviceState struct {
	LastAuth      time.Time // last user authentication; zero if none
	AuthMethod    string    // method of that authentication ("passphrase", "biometric", …)
	Unlocked      bool      // keystore unlocked: wrapping keys in memory
	AppAuthorized bool      // app session signed in / calling process authorized
	Association   Association
	Revoked       bool // the device is revoked; nothing is ever allowed again
	Posture       Posture
	OSTrust       OSTrust
	Attestation   Attestation
}

// Requirements are what one key demands of the device state. The zero value
// requires nothing beyond the device not being revoked.
type Requirements struct {
	Unlocked      bool
	AuthWithin    time.Duration // > 0: a user authentication within this long
	AuthMethods   []string      // non-empty: the last authentication used one of these
	AppAuthorized bool
	Associated    bool
	MinPosture    PostureLevel // PostureUnknown (zero) requires nothing
	OSTrust       bool         // Enigm OS Trust deployed and trusted
	Attestation   bool         // a verified attestation
	// AttestationMaxAge > 0 bounds the age of the verified attestation.
	AttestationMaxAge time.Duration
}

// Decide returns the decision for using a key with requirements req in
// state st at time now. It allocates nothing.
func Decide(req *Requirements, st *DeviceState, now time.Time) Decision {
	var d Decision
	if st.Revoked {
		d = d.Deny(Revoked)
	}
	if req.Unlocked && !st.Unlocked {
		d = d.Deny(Locked)
	}
	if req.AuthWithin > 0 {
		if st.LastAuth.IsZero() || now.Sub(st.LastAuth) > req.AuthWithin || st.LastAuth.After(now.Add(clockSkew)) {
			d = d.Deny(AuthStale)
		}
	}
	if len(req.AuthMethods) > 0 && !contains(req.AuthMethods, st.AuthMethod) {
		d = d.Deny(AuthMethod)
	}
	if req.AppAuthorized && !st.AppAuthorized {
		d = d.Deny(AppNotAuthorized)
	}
	if req.Associated && st.Association != Associated {
		d = d.Deny(NotAssociated)
	}
	if req.MinPosture != PostureUnknown && !st.Posture.Level.AtLeast(req.MinPosture) {
		d = d.Deny(PostureInsufficient)
	}
	if req.OSTrust && !(st.OSTrust.Deployed && st.OSTrust.Trusted) {
		d = d.Deny(OSTrustRequired)
	}
	if req.Attestation {
		a := st.Attestation
		fresh := req.AttestationMaxAge <= 0 || (!a.At.IsZero() && now.Sub(a.At) <= req.AttestationMaxAge)
		if !a.Applicable || !a.Verified || !fresh {
			d = d.Deny(AttestationRequired)
		}
	}
	return d
}

// clockSkew is how far in the future an authentication time may lie before
// it is treated as untrustworthy (a clock set back after authenticating).
const clockSkew = 5 * time.Second

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Tighten returns requirements at least as strict as both r and o: every
// boolean is OR-ed, durations take the shorter non-zero value, the posture
// minimum the higher level, and allowed methods the intersection (an empty
// list means "any").
func (r Requirements) Tighten(o Requirements) Requirements {
	out := Requirements{
		Unlocked:          r.Unlocked || o.Unlocked,
		AuthWithin:        minNonZero(r.AuthWithin, o.AuthWithin),
		AppAuthorized:     r.AppAuthorized || o.AppAuthorized,
		Associated:        r.Associated || o.Associated,
		MinPosture:        stricterPosture(r.MinPosture, o.MinPosture),
		OSTrust:           r.OSTrust || o.OSTrust,
		Attestation:       r.Attestation || o.Attestation,
		AttestationMaxAge: minNonZero(r.AttestationMaxAge, o.AttestationMaxAge),
	}
	switch {
	case len(r.AuthMethods) == 0:
		out.AuthMethods = append([]string(nil), o.AuthMethods...)
	case len(o.AuthMethods) == 0:
		out.AuthMethods = append([]string(nil), r.AuthMethods...)
	default:
		for _, m := range r.AuthMethods {
			if contains(o.AuthMethods, m) {
				out.AuthMethods = append(out.AuthMethods, m)
			}
		}
		if len(out.AuthMethods) == 0 {
			// No method satisfies both: nothing may authenticate.
			out.AuthMethods = []string{NoMethod}
		}
	}
	return out
}

// stricterPosture returns the higher of two minimums; PostureUnknown as a
// minimum means "no requirement".
func stricterPosture(a, b PostureLevel) PostureLevel {
	switch {
	case a == PostureUnknown:
		return b
	case b == PostureUnknown:
		return a
	case b.rank() > a.rank():
		return b
	}
	return a
}

// NoMethod is an authentication method no device state ever reports; a
// requirement list of only NoMethod can never be met.
const NoMethod = "-"

func minNonZero(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	case a < b:
		return a
	}
	return b
}

// Class names the key classes that have default requirements.
type Class string

// Key classes.
const (
	ClassIdentity Class = "identity"
	ClassKEM      Class = "kem"
	ClassSession  Class = "session"
	ClassBinding  Class = "binding"
)

// Default returns the default requirements of a key class (DESIGN §4).
//
//	identity: unlocked, authenticated within 5 minutes, app authorized, posture ≥ degraded
//	kem:      unlocked, associated
//	session:  unlocked, app authorized
//	binding:  unlocked, app authorized, posture ≥ degraded
//
// Every class is also denied on a revoked device. The second result is false
// for an unknown class.
func Default(c Class) (Requirements, bool) {
	switch c {
	case ClassIdentity:
		return Requirements{Unlocked: true, AuthWithin: 5 * time.Minute, AppAuthorized: true, MinPosture: PostureDegraded}, true
	case ClassKEM:
		return Requirements{Unlocked: true, Associated: true}, true
	case ClassSession:
		return Requirements{Unlocked: true, AppAuthorized: true}, true
	case ClassBinding:
		return Requirements{Unlocked: true, AppAuthorized: true, MinPosture: PostureDegraded}, true
	}
	return Requirements{}, false
}
