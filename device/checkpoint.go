package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/translog"
)

// The newest transparency-log checkpoint this device verified, and the
// log keys it pinned, in agent.db (client.LogStore).
var (
	bucketLog   = []byte("log")
	keyLogState = []byte("state")
)

var _ client.LogStore = (*agentDB)(nil)

// LogState implements client.LogStore: nil before the first checkpoint.
func (a *agentDB) LogState() (*client.LogState, error) {
	var out *client.LogState
	err := a.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		if b == nil {
			return nil
		}
		v := b.Get(keyLogState)
		if v == nil {
			return nil
		}
		out = new(client.LogState)
		return json.Unmarshal(v, out)
	})
	if err != nil {
		return nil, fmt.Errorf("device: the log checkpoint in %s: %w", AgentFile, err)
	}
	return out, nil
}

// SetLogState implements client.LogStore.
func (a *agentDB) SetLogState(s *client.LogState) error {
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return a.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLog)
		if err != nil {
			return err
		}
		return b.Put(keyLogState, v)
	})
}

// SyncLog fetches the server's newest transparency-log checkpoint and
// accepts it only if it verifies under the log keys this device pinned
// (configured, or at its first sync from the server's GET /v1/info), is
// consistent with the checkpoint it verified before and meets the
// configured witness policy (LogConfig); the accepted one is kept in
// agent.db. A rolled-back log is client.ErrLogRollback, a forked one
// client.ErrLogFork, one the witness policy refuses client.ErrWitness
// (unless the stored checkpoint still meets the policy: it stays in
// force); nothing is stored then, and the refused checkpoint is kept as
// evidence (RefusedCheckpoints). Every chain sync runs it first.
func (a *Agent) SyncLog(ctx context.Context) (translog.Checkpoint, error) {
	cl, err := a.client()
	if err != nil {
		return translog.Checkpoint{}, err
	}
	return a.syncLog(ctx, cl)
}

func (a *Agent) syncLog(ctx context.Context, cl *client.Client) (translog.Checkpoint, error) {
	p, err := a.logPolicy()
	if err != nil {
		return translog.Checkpoint{}, err
	}
	c, err := cl.SyncLogPolicy(ctx, a.db, p)
	if errors.Is(err, client.ErrWitness) {
		// The server's newest checkpoint is refused (kept as evidence).
		// The one stored, if it still meets the policy, stays in force:
		// a checkpoint is served before its witnesses cosign it, and links
		// beyond the stored one simply wait.
		if st, serr := a.db.LogState(); serr == nil && st != nil && st.Size > 0 {
			cp := translog.Checkpoint{Origin: st.Origin, Size: st.Size}
			copy(cp.Hash[:], st.Hash)
			if p.CheckWitnesses(st.Checkpoint, cp) == nil {
				a.logRefusal = err
				return cp, nil
			}
		}
	}
	if err != nil {
		return c, err
	}
	a.logSynced, a.noLog, a.logRefusal = time.Now(), false, nil
	return c, nil
}

// DefaultLogWait is how long a chain sync waits, by default, for links
// that are not in the transparency log yet.
const DefaultLogWait = 5 * time.Second

const (
	// logReuse: a checkpoint this process accepted less than this long
	// ago serves the next chain sync without asking the server again
	// (a command that syncs several accounts syncs the log once).
	logReuse = time.Second
	// logPoll is the interval of log syncs while a sync waits for a
	// link to be logged.
	logPoll = 100 * time.Millisecond
)

// logFollowed reports whether chain syncs must go through the log: once
// this device pinned a log it always does (a server that stops
// publishing it is refused by SyncLog); before that, when the server
// advertises one (GET /v1/info, asked once per process).
func (a *Agent) logFollowed(ctx context.Context, cl *client.Client) (bool, error) {
	st, err := a.db.LogState()
	if err != nil {
		return false, err
	}
	if st != nil {
		return true, nil
	}
	// Configured, or required by the account's witness policy (which a
	// link synced without the log may just have set): required from the
	// first contact.
	if p, err := a.logPolicy(); err != nil || p.Pin != nil || p.RequiresWitnesses() {
		return true, err
	}
	if a.noLog {
		return false, nil
	}
	info, err := cl.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("device: asking the server whether it publishes a transparency log: %w", err)
	}
	if info.Log == nil {
		a.noLog = true
		return false, nil
	}
	return true, nil
}

// syncLogged syncs acct's chain through the log: it syncs the log (at
// most once per logReuse), then accepts the links that are in the
// verified checkpoint (client.SyncLogged). While a link is newer than the
// checkpoint (Command integrates within about a second; the link may be
// one this device has just appended) it syncs the log again every logPoll,
// for at most LogWait, keeping the logged prefix; after that the error
// names the link that is not logged yet.
func (a *Agent) syncLogged(ctx context.Context, cl *client.Client, acct chain.AccountID) (*chain.State, error) {
	wait := a.opts.LogWait
	if wait <= 0 {
		wait = DefaultLogWait
	}
	deadline := time.Now().Add(wait)
	for again := false; ; again = true {
		var st *chain.State
		var err error
		if again || a.logSynced.IsZero() || time.Since(a.logSynced) >= logReuse {
			if _, err = a.syncLog(ctx, cl); errors.Is(err, client.ErrNotFound) {
				// No checkpoint yet (a server that just started).
				err = fmt.Errorf("%w: the server has no log checkpoint yet: %w", client.ErrNotLoggedYet, err)
			}
		}
		if err == nil {
			st, err = cl.SyncLogged(ctx, acct, a.db, a.verified[acct], a.logStore(), a.now(), a.verifyOpts()...)
			if err == nil && st != nil {
				// The head is the account's newest in the log
				// (client.VerifyFreshness): a server that hides a newer
				// link, a revocation say, behind valid inclusion proofs of
				// the older ones is refused.
				_, err = cl.VerifyFreshness(ctx, acct, st.Head(), a.logStore())
			}
			if err == nil || errors.Is(err, client.ErrNotLoggedYet) || errors.Is(err, client.ErrNotLogged) ||
				errors.Is(err, client.ErrHeadNotLogged) || errors.Is(err, client.ErrStaleHead) || errors.Is(err, client.ErrNotFresh) ||
				errors.Is(err, client.ErrWitness) || errors.Is(err, client.ErrRecoveryNotWitnessed) {
				// The links agent.db holds now (SyncLogged stored a prefix
				// and returned its state; the account's witness policy or a
				// recover link on witnessed time can stop it too).
				a.remember(acct, st)
			}
		}
		if err == nil {
			return st, nil
		}
		// Retried until the deadline: a link not integrated yet, and a
		// checkpoint not witnessed (yet: a checkpoint is served before its
		// witnesses cosign it) with no stored one in force.
		// And a head not in the log's newest map yet, or older than the
		// map's (a link appended between the chain and the freshness
		// answers is fetched by the next round; a server that keeps
		// hiding it is refused at the deadline).
		if !errors.Is(err, client.ErrNotLoggedYet) && !errors.Is(err, client.ErrWitness) &&
			!errors.Is(err, client.ErrHeadNotLogged) && !errors.Is(err, client.ErrStaleHead) {
			return nil, err
		}
		if time.Now().After(deadline) {
			if errors.Is(err, client.ErrWitness) {
				return nil, fmt.Errorf("device: %w (waited %s for a checkpoint that meets the policy)", err, wait)
			}
			if a.logRefusal != nil {
				return nil, fmt.Errorf("device: %w (waited %s for the log; the server's newest checkpoint was refused: %w)", err, wait, a.logRefusal)
			}
			return nil, fmt.Errorf("device: %w (waited %s for the log)", err, wait)
		}
		if !again {
			a.progress("waiting for the transparency log: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("device: %w (%w)", err, ctx.Err())
		case <-time.After(logPoll):
		}
	}
}

// LogConfig is what this device requires of the transparency log,
// configured at init or join (ConfigureLog) and kept in agent.db.
type LogConfig struct {
	// Pin is the log's origin and keys (`enigm-command log public-key`);
	// nil means those the server advertises at first contact (trust on
	// first use), or the policy's log lines.
	Pin *client.LogPin `json:"pin,omitempty"`
	// Policy is a c2sp.org/tlog-policy: the witnesses and the quorum of
	// them every accepted checkpoint needs. Its log lines, when it has
	// any, pin the log (they must all carry one key name, the origin).
	Policy string `json:"policy,omitempty"`
	// MaxAge bounds the age of the quorum's cosignatures; 0 means
	// client.DefaultMaxCheckpointAge when the quorum needs a witness.
	MaxAge time.Duration `json:"max_age,omitempty"`
}

var keyLogConfig = []byte("config")

// ParseLogConfig checks c: the policy parses, its log lines name one log
// and agree with the pin; it returns the pin in force (nil for trust on
// first use) and the parsed policy (nil without one).
func ParseLogConfig(c LogConfig) (*client.LogPin, *translog.Policy, error) {
	pin := c.Pin
	if pin != nil && (pin.Origin == "" || len(pin.PublicKeys) == 0) {
		return nil, nil, fmt.Errorf("device: a log pin needs the log's origin and at least one key")
	}
	if pin != nil {
		if err := translog.CheckLogKeys(pin.Origin, pin.PublicKeys); err != nil {
			return nil, nil, fmt.Errorf("device: the log keys: %w", err)
		}
	}
	if c.MaxAge < 0 {
		return nil, nil, fmt.Errorf("device: the maximum checkpoint age %s is negative", c.MaxAge)
	}
	if c.Policy == "" {
		return pin, nil, nil
	}
	pol, err := translog.ParsePolicy([]byte(c.Policy))
	if err != nil {
		return nil, nil, err
	}
	if len(pol.Logs) > 0 {
		origin, _, _ := strings.Cut(pol.Logs[0], "+")
		for _, k := range pol.Logs {
			if o, _, _ := strings.Cut(k, "+"); o != origin {
				return nil, nil, fmt.Errorf("device: the policy names the logs %q and %q; this device follows one log (one origin, with its Ed25519 and ML-DSA-44 keys)", origin, o)
			}
		}
		fromPolicy := &client.LogPin{Origin: origin, PublicKeys: pol.Logs}
		if pin != nil && !pin.Same(*fromPolicy) {
			return nil, nil, fmt.Errorf("%w: the policy's log lines (%s) differ from the log keys given (%s)", client.ErrLogKeys, origin, pin.Origin)
		}
		pin = fromPolicy
	}
	return pin, pol, nil
}

// ConfigureLog sets what this device requires of the transparency log
// (LogConfig). A pin unlike the log this device already follows is
// client.ErrLogKeys: a device never changes logs.
func (a *Agent) ConfigureLog(c LogConfig) error {
	pin, _, err := ParseLogConfig(c)
	if err != nil {
		return err
	}
	st, err := a.db.LogState()
	if err != nil {
		return err
	}
	if pin != nil && st != nil && !pin.Same(st.LogPin) {
		return fmt.Errorf("%w: this device follows the log %q with other keys; it cannot be moved to %q", client.ErrLogKeys, st.Origin, pin.Origin)
	}
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	err = a.db.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLog)
		if err != nil {
			return err
		}
		return b.Put(keyLogConfig, v)
	})
	if err != nil {
		return err
	}
	a.logCfg, a.noLog = nil, false
	return nil
}

// LogConfig returns the stored configuration (zero without one).
func (a *Agent) LogConfig() (LogConfig, error) {
	var c LogConfig
	if err := a.readLogJSON(keyLogConfig, &c); err != nil {
		return c, fmt.Errorf("device: the log configuration in %s: %w", AgentFile, err)
	}
	return c, nil
}

// logPolicy returns what this device requires of the log's checkpoints
// now: its configured policy (configuredLogPolicy) and the witness policy
// of its own account's last verified chain state (orgLogPolicy).
func (a *Agent) logPolicy() (client.LogPolicy, error) {
	p, err := a.configuredLogPolicy()
	if err != nil {
		return p, err
	}
	acct, ok := a.policyAccount()
	if !ok {
		return p, nil
	}
	st := a.verified[acct]
	if st == nil {
		// Not synced by this process yet: the stored links' state.
		if st, err = client.Load(acct, a.db, a.now(), a.verifyOpts()...); err != nil || st == nil {
			return p, err
		}
		a.remember(acct, st)
	}
	return a.orgLogPolicy(p, st.Policy())
}

// policyAccount is the account whose witness policy binds this device:
// its own, or before it has one the account it is joining.
func (a *Agent) policyAccount() (chain.AccountID, bool) {
	if acct, ok := a.cfg.account(); ok {
		return acct, true
	}
	if a.joining != nil {
		return *a.joining, true
	}
	return chain.AccountID{}, false
}

// configuredLogPolicy returns the client.LogPolicy of the stored
// configuration (parsed once per process).
func (a *Agent) configuredLogPolicy() (client.LogPolicy, error) {
	if a.logCfg != nil {
		return *a.logCfg, nil
	}
	c, err := a.LogConfig()
	if err != nil {
		return client.LogPolicy{}, err
	}
	pin, pol, err := ParseLogConfig(c)
	if err != nil {
		return client.LogPolicy{}, fmt.Errorf("device: the log configuration in %s: %w", AgentFile, err)
	}
	p := client.LogPolicy{Pin: pin, Witnesses: pol, MaxAge: c.MaxAge, Now: a.now}
	a.logCfg = &p
	return p, nil
}

// orgLogPolicy returns p with the witness policy of the account policy cp
// (an organisation's, signed in its chain) required too. One that does not
// parse is an error, so that this device syncs nothing under it rather
// than ignore it: Command checks a policy before it signs one, so only a
// faulty or hostile Command can set it.
func (a *Agent) orgLogPolicy(p client.LogPolicy, cp chain.Policy) (client.LogPolicy, error) {
	if cp.WitnessPolicy == "" {
		return p, nil
	}
	if a.orgPolicy == nil || a.orgPolicy.text != cp.WitnessPolicy {
		pol, _, err := client.OrgPolicy(cp)
		if err != nil {
			return p, fmt.Errorf("device: %w; this device syncs nothing under it until the organisation's administrator sets a valid one", err)
		}
		a.orgPolicy = &parsedOrgPolicy{text: cp.WitnessPolicy, pol: pol}
	}
	p.Org, p.OrgMaxAge = a.orgPolicy.pol, cp.WitnessMaxAge
	return p, nil
}

// parsedOrgPolicy caches the parse of the account's witness policy.
type parsedOrgPolicy struct {
	text string
	pol  *translog.Policy
}

var _ client.AccountPolicySource = witnessedLog{}

// BindsAccount implements client.AccountPolicySource: the witness policy
// of this device's own account binds it (or of the account it is
// joining, from the first contact on); the links of other accounts
// (correspondents) are accepted under the checkpoint this device accepted
// for its own, whatever their organisations require.
func (w witnessedLog) BindsAccount(acct chain.AccountID) bool {
	own, ok := w.a.policyAccount()
	return ok && own == acct
}

// AccountLogPolicy implements client.AccountPolicySource: this device's
// own policy and the account's witness policy cp.
func (w witnessedLog) AccountLogPolicy(acct chain.AccountID, cp chain.Policy) (client.LogPolicy, error) {
	p, err := w.a.configuredLogPolicy()
	if err != nil {
		return p, err
	}
	return w.a.orgLogPolicy(p, cp)
}

// Refused checkpoints, kept as evidence (client.LogEvidence).
var keyLogRefused = []byte("refused")

// MaxRefusedCheckpoints bounds the refused checkpoints agent.db keeps
// (the newest are kept).
const MaxRefusedCheckpoints = 32

// RefusedCheckpoint is a checkpoint this device refused, kept as
// evidence: the signed note as served, why, and when.
type RefusedCheckpoint struct {
	At         time.Time `json:"at"`
	Reason     string    `json:"reason"`
	Checkpoint []byte    `json:"checkpoint"`
}

var _ client.LogEvidence = (*agentDB)(nil)

// KeepRefusedCheckpoint implements client.LogEvidence: the note is kept
// once (a note refused again only moves to the end), at most
// MaxRefusedCheckpoints of them.
func (a *agentDB) KeepRefusedCheckpoint(signed []byte, reason string) error {
	return a.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketLog)
		if err != nil {
			return err
		}
		var list []RefusedCheckpoint
		if v := b.Get(keyLogRefused); v != nil {
			if err := json.Unmarshal(v, &list); err != nil {
				return err
			}
		}
		list = slices.DeleteFunc(list, func(r RefusedCheckpoint) bool { return bytes.Equal(r.Checkpoint, signed) })
		list = append(list, RefusedCheckpoint{At: time.Now().UTC(), Reason: reason, Checkpoint: signed})
		if len(list) > MaxRefusedCheckpoints {
			list = list[len(list)-MaxRefusedCheckpoints:]
		}
		v, err := json.Marshal(list)
		if err != nil {
			return err
		}
		return b.Put(keyLogRefused, v)
	})
}

// RefusedCheckpoints returns the refused checkpoints kept, oldest first.
func (a *Agent) RefusedCheckpoints() ([]RefusedCheckpoint, error) {
	var list []RefusedCheckpoint
	err := a.readLogJSON(keyLogRefused, &list)
	return list, err
}

// readLogJSON decodes the JSON stored under key in the log bucket into v,
// leaving v as it is when there is none.
func (a *Agent) readLogJSON(key []byte, v any) error {
	return a.db.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		if b == nil {
			return nil
		}
		if raw := b.Get(key); raw != nil {
			return json.Unmarshal(raw, v)
		}
		return nil
	})
}

// LogState returns the log this device follows and the newest checkpoint
// it verified (nil before the first).
func (a *Agent) LogState() (*client.LogState, error) { return a.db.LogState() }

// logPreflight syncs the log before this device registers anything with
// the server (Init), so that a server whose log it refuses (other keys,
// no witness quorum) gets nothing from it. A log without a checkpoint yet
// passes.
func (a *Agent) logPreflight(ctx context.Context, cl *client.Client) error {
	follow, err := a.logFollowed(ctx, cl)
	if err != nil || !follow {
		return err
	}
	wait := a.opts.LogWait
	if wait <= 0 {
		wait = DefaultLogWait
	}
	deadline := time.Now().Add(wait)
	for {
		_, err := a.syncLog(ctx, cl)
		if err == nil || errors.Is(err, client.ErrNotFound) {
			return nil
		}
		// A checkpoint not witnessed yet is retried as in syncLogged.
		if !errors.Is(err, client.ErrWitness) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("device: %w (%w)", err, ctx.Err())
		case <-time.After(logPoll):
		}
	}
}
