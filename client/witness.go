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
	// DefaultMaxCheckpointAge when the quorum needs a witness, none
	// otherwise; negative means no bound.
	MaxAge time.Duration
	// Now is the device's clock; nil means time.Now.
	Now func() time.Time
}

// maxAge is the bound in force, 0 for none.
func (p LogPolicy) maxAge() time.Duration {
	switch {
	case p.MaxAge < 0 || !p.Witnesses.RequiresWitnesses():
		return 0
	case p.MaxAge == 0:
		return DefaultMaxCheckpointAge
	}
	return p.MaxAge
}

// WitnessError says why a checkpoint was refused by the witness policy.
type WitnessError struct {
	Size uint64
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
	if e.Age > 0 {
		return fmt.Sprintf("the newest witnessed checkpoint (%d leaves) is %s old, the device allows %s: the server serves a stale checkpoint or its witnesses stopped cosigning",
			e.Size, e.Age.Round(time.Second), e.MaxAge)
	}
	s := fmt.Sprintf("checkpoint %d has %d of %d required witness cosignatures (quorum %s): missing %s", e.Size, e.Have, e.Need, e.Quorum, strings.Join(e.Missing, ", "))
	if len(e.Invalid) > 0 {
		s += "; cosignatures that do not verify: " + strings.Join(e.Invalid, ", ")
	}
	return s
}

// Is makes every WitnessError match ErrWitness.
func (e *WitnessError) Is(target error) bool { return target == ErrWitness }

// CheckWitnesses checks the signed checkpoint cp (signed, already
// verified under the log keys) against the policy: the witnesses whose
// cosignatures verify must meet the quorum, and the quorum's time — the
// latest time t such that the witnesses that cosigned at t or later meet
// the quorum — must be at most the maximum age before now. A timestamp
// in the future counts as now. It returns a *WitnessError otherwise.
func (p LogPolicy) CheckWitnesses(signed []byte, cp translog.Checkpoint) error {
	if !p.Witnesses.RequiresWitnesses() {
		return nil
	}
	pol := p.Witnesses
	keys := make([]string, len(pol.Witnesses))
	for i, w := range pol.Witnesses {
		keys[i] = w.Key
	}
	cos, err := translog.Cosignatures(signed, keys)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrWitness, err)
	}
	if !pol.Satisfied(func(i int) bool { return cos[i].Valid }) {
		e := &WitnessError{Size: cp.Size, Need: pol.MinWitnesses(), Quorum: pol.Quorum}
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
	limit := p.maxAge()
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
	now := time.Now()
	if p.Now != nil {
		now = p.Now()
	}
	if age := now.Sub(at); age > limit {
		return &WitnessError{Size: cp.Size, Quorum: pol.Quorum, Need: pol.MinWitnesses(), Have: len(times), Age: age, MaxAge: limit}
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
