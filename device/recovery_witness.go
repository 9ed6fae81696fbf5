package device

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
)

// Recovery on witnessed time (docs/design/translog.md): a device with a
// witness policy accepts a recover link only under a checkpoint whose
// witnessed time is at least the request's witnessed time plus the
// waiting period (client.CheckRecoverWitnessed, run by every logged
// chain sync through witnessedLog), and shows the witnessed times of a
// pending recovery.

// witnessedLog is the device's log store as chain syncs see it: with the
// witness policy, so that client.SyncLogged checks recover links on
// witnessed time.
type witnessedLog struct {
	*agentDB
	a *Agent
}

var _ client.WitnessPolicySource = witnessedLog{}

// WitnessPolicy implements client.WitnessPolicySource.
func (w witnessedLog) WitnessPolicy() (client.LogPolicy, error) { return w.a.logPolicy() }

// logStore returns the log store chain syncs use.
func (a *Agent) logStore() witnessedLog { return witnessedLog{agentDB: a.db, a: a} }

// witnessRecovery fills in ri's witnessed times, from the evidence the
// server offers checked under this device's witness policy, when the
// policy requires witnesses; when it cannot (no evidence yet, evidence
// refused) WitnessError says why. st is the verified state ri comes from.
func (a *Agent) witnessRecovery(ctx context.Context, acct chain.AccountID, st *chain.State, ri *RecoveryInfo) {
	if ri == nil || st == nil {
		return
	}
	p, err := a.logPolicy()
	if err != nil {
		ri.WitnessError = err.Error()
		return
	}
	if !p.Witnesses.RequiresWitnesses() {
		return
	}
	ri.Witnessed = true
	pub, err := a.recoveryPublic(ctx, acct, st, p)
	if err != nil {
		ri.WitnessError = err.Error()
		return
	}
	ri.WitnessedAt, ri.WitnessedNotBefore = pub.WitnessedAt, pub.NotBefore
}

// recoveryPublic verifies the server's evidence of when the recovery
// pending in st was first witnessed.
func (a *Agent) recoveryPublic(ctx context.Context, acct chain.AccountID, st *chain.State, p client.LogPolicy) (client.RecoveryPublic, error) {
	pr, ok := st.PendingRecovery()
	if !ok {
		return client.RecoveryPublic{}, ErrNoPendingRecovery
	}
	cl, err := a.client()
	if err != nil {
		return client.RecoveryPublic{}, err
	}
	raw, err := a.db.Links(acct)
	if err != nil {
		return client.RecoveryPublic{}, err
	}
	if pr.Seq >= uint64(len(raw)) {
		return client.RecoveryPublic{}, fmt.Errorf("device: the stored chain lacks the recovery request link %d", pr.Seq)
	}
	ls, err := a.db.LogState()
	if err != nil {
		return client.RecoveryPublic{}, err
	}
	return cl.VerifyRecoveryPublic(ctx, acct, pr, raw[pr.Seq], max(pr.Delay, st.Policy().RecoveryDelay), ls, p)
}

// waitWitnessed is finishRecovery's check on witnessed time: while the
// waiting period has not passed by the request's witnessed time (as
// this device computes it under its witness policy), completing waits.
func (a *Agent) waitWitnessed(ctx context.Context, acct chain.AccountID, st *chain.State) error {
	p, err := a.logPolicy()
	if err != nil || !p.Witnesses.RequiresWitnesses() {
		return err
	}
	pr, _ := st.PendingRecovery()
	pub, err := a.recoveryPublic(ctx, acct, st, p)
	if err != nil {
		return fmt.Errorf("%w: the recovery request %s is not witnessed as this device requires yet: %v", ErrWaiting, hex.EncodeToString(pr.Request[:]), err)
	}
	if a.now().Before(pub.NotBefore) {
		return fmt.Errorf("%w: the recovery request was first witnessed at %s; completion allowed after %s by witnessed time",
			ErrWaiting, pub.WitnessedAt.UTC().Format(time.RFC3339), pub.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
