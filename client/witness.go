package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/enigm/enigm/translog"
)

// DefaultMaxCheckpointAge is the age a device allows its newest
// checkpoint, by its witnesses' cosignature timestamps, when its policy
// requires any witness and sets no other.
const DefaultMaxCheckpointAge = time.Hour

// ErrWitness: a checkpoint lacks the witness cosignatures the device's
// policy requires, or they are older than it allows (*WitnessError says
// which).
var ErrWitness = errors.New("client: the log checkpoint is not witnessed as this device requires")

// LogPolicy is what a device requires of the log's checkpoints.
type LogPolicy struct {
	// Pin: the log's origin and keys; nil means those stored, or at first
	// contact those the server advertises.
	Pin *LogPin
	// Witnesses is the c2sp.org/tlog-policy whose quorum every accepted
	// checkpoint must meet; nil (or quorum none) requires none.
	Witnesses *translog.Policy
	// MaxAge bounds how old the quorum's cosignatures may be; 0 means
	// DefaultMaxCheckpointAge when a quorum needs a witness, none
	// otherwise; negative means no bound.
	MaxAge time.Duration
	// Org is the witness policy of the device's own account, from its
	// verified chain (chain.Policy.WitnessPolicy, which the account's
	// organisation signs), required in addition to Witnesses: an accepted
	// checkpoint meets both quorums. OrgMaxAge is that policy's bound
	// (chain.Policy.WitnessMaxAge; 0 for none of its own): the smaller of
	// it and the device's applies to both quorums.
	Org       *translog.Policy
	OrgMaxAge time.Duration
	// Now is the device's clock; nil means time.Now.
	Now func() time.Time
}

// RequiresWitnesses reports whether the device's or the organisation's
// quorum needs any cosignature.
func (p LogPolicy) RequiresWitnesses() bool {
	return p.Witnesses.RequiresWitnesses() || p.Org.RequiresWitnesses()
}

// maxAge is the bound in force, 0 for none.
func (p LogPolicy) maxAge() time.Duration {
	var limit time.Duration
	switch {
	case !p.RequiresWitnesses():
		return 0
	case p.MaxAge == 0:
		limit = DefaultMaxCheckpointAge
	case p.MaxAge > 0:
		limit = p.MaxAge
	}
	if p.OrgMaxAge > 0 && p.Org.RequiresWitnesses() && (limit == 0 || p.OrgMaxAge < limit) {
		limit = p.OrgMaxAge
	}
	return limit
}

// Whose policy a WitnessError names.
const (
	PolicyOfDevice = "device"
	PolicyOfOrg    = "organisation"
)

// WitnessError says why a checkpoint was refused by the witness policy.
type WitnessError struct {
	Size uint64
	// Policy is whose quorum is not met: PolicyOfDevice (its log
	// configuration) or PolicyOfOrg (its account's chain policy).
	Policy string
	// Have is the number of the policy's witnesses that validly cosigned,
	// Need the least number whose cosignatures meet the quorum.
	Have, Need int
	Quorum     string
	// Missing names the policy's witnesses without a valid cosignature
	// ("name (key name)"), Invalid those whose cosignature line does not
	// verify.
	Missing, Invalid []string
	// Age is how old the quorum's cosignatures are; nonzero only when
	// the quorum is met but older than MaxAge.
	Age, MaxAge time.Duration
}

func (e *WitnessError) Error() string {
	whose := ""
	if e.Policy == PolicyOfOrg {
		whose = " of the witness policy the account's organisation set in its chain"
	}
	if e.Age > 0 {
		return fmt.Sprintf("the newest witnessed checkpoint (%d leaves) is %s old, the device allows %s: the server serves a stale checkpoint or its witnesses stopped cosigning",
			e.Size, e.Age.Round(time.Second), e.MaxAge)
	}
	s := fmt.Sprintf("checkpoint %d has %d of %d required witness cosignatures%s (quorum %s): missing %s", e.Size, e.Have, e.Need, whose, e.Quorum, strings.Join(e.Missing, ", "))
	if len(e.Invalid) > 0 {
		s += "; cosignatures that do not verify: " + strings.Join(e.Invalid, ", ")
	}
	return s
}

// Is makes every WitnessError match ErrWitness.
func (e *WitnessError) Is(target error) bool { return target == ErrWitness }

// CheckWitnesses checks the signed checkpoint cp (signed, already
// verified under the log keys) against the policy, the device's quorum
// and then the organisation's: the witnesses whose cosignatures verify
// must meet each quorum, and each quorum's time — the latest time t such
// that the witnesses that cosigned at t or later meet it — must be at
// most the maximum age before now. A timestamp in the future counts as
// now. It returns a *WitnessError otherwise.
func (p LogPolicy) CheckWitnesses(signed []byte, cp translog.Checkpoint) error {
	limit := p.maxAge()
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	if err := checkQuorum(signed, cp, p.Witnesses, PolicyOfDevice, limit, now); err != nil {
		return err
	}
	return checkQuorum(signed, cp, p.Org, PolicyOfOrg, limit, now)
}

// checkQuorum is CheckWitnesses for one policy (whose: PolicyOfDevice or
// PolicyOfOrg) under the bound limit (0 for none).
func checkQuorum(signed []byte, cp translog.Checkpoint, pol *translog.Policy, whose string, limit time.Duration, now time.Time) error {
	if !pol.RequiresWitnesses() {
		return nil
	}
	keys := make([]string, len(pol.Witnesses))
	for i, w := range pol.Witnesses {
		keys[i] = w.Key
	}
	cos, err := translog.Cosignatures(signed, keys)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWitness, err)
	}
	if !pol.Satisfied(func(i int) bool { return cos[i].Valid }) {
		e := &WitnessError{Size: cp.Size, Policy: whose, Need: pol.MinWitnesses(), Quorum: pol.Quorum}
		for i, w := range pol.Witnesses {
			name := w.Name + " (" + keyName(w.Key) + ")"
			switch {
			case cos[i].Valid:
				e.Have++
			case cos[i].Present:
				e.Invalid = append(e.Invalid, name)
				e.Missing = append(e.Missing, name)
			default:
				e.Missing = append(e.Missing, name)
			}
		}
		return e
	}
	if limit == 0 {
		return nil
	}
	// The quorum's time: try the cosignature times from the newest down.
	var times []time.Time
	for _, c := range cos {
		if c.Valid {
			times = append(times, c.Time)
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return b.Compare(a) })
	var at time.Time
	for _, t := range times {
		if pol.Satisfied(func(i int) bool { return cos[i].Valid && !cos[i].Time.Before(t) }) {
			at = t
			break
		}
	}
	if age := now.Sub(at); age > limit {
		return &WitnessError{Size: cp.Size, Policy: whose, Quorum: pol.Quorum, Need: pol.MinWitnesses(), Have: len(times), Age: age, MaxAge: limit}
	}
	return nil
}

func keyName(vkey string) string {
	name, _, _ := strings.Cut(vkey, "+")
	return name
}

// LogEvidence is implemented by a LogStore that keeps the checkpoints
// SyncLogPolicy refused (signed by the log, so evidence against it).
type LogEvidence interface {
	KeepRefusedCheckpoint(signed []byte, reason string) error
}

// keepEvidence keeps a refused checkpoint when st can. Failing to keep
// it does not change the refusal.
func keepEvidence(st LogStore, signed []byte, why error) {
	if ev, ok := st.(LogEvidence); ok {
		ev.KeepRefusedCheckpoint(signed, why.Error())
	}
}
