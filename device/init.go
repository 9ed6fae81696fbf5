package device

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/lifecycle"
)

// InitOptions configure account setup on the first device.
type InitOptions struct {
	Account       string        // account name
	DeviceName    string        // this device's display name
	Invite        string        // organisation invite code (managed accounts)
	Org           string        // organisation id the invite must be for ("" = whatever it names)
	RecoveryDelay time.Duration // unmanaged accounts; 0 means the chain default (24h)
	// SetRecoveryDelay distinguishes "0 on purpose" from "not given".
	SetRecoveryDelay bool
}

// InitResult is what account setup produced.
type InitResult struct {
	Account      chain.AccountID
	Device       chain.DeviceID
	RecoveryCode *chain.RecoveryCode // show once; never stored
	Fingerprint  string
}

// Init sets up a new account with this device as its first device: keys,
// recovery code, genesis link, registration with Command.
func (a *Agent) Init(ctx context.Context, o InitOptions) (*InitResult, error) {
	if a.cfg.Account != "" || a.cfg.Status != StatusNone {
		return nil, fmt.Errorf("%w (%s)", ErrHasAccount, a.cfg.AccountName)
	}
	if err := checkName(o.Account); err != nil {
		return nil, err
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	if err := a.logPreflight(ctx, cl); err != nil {
		return nil, err
	}
	policy := chain.DefaultPolicy()
	if o.SetRecoveryDelay {
		policy.RecoveryDelay = o.RecoveryDelay
	}
	var org *chain.Org
	if o.Invite != "" {
		inv, err := cl.Invite(ctx, o.Invite)
		if err != nil {
			return nil, fmt.Errorf("device: invite: %w", err)
		}
		if o.Org != "" && inv.OrgID != o.Org {
			return nil, fmt.Errorf("device: the invite is for organisation %q, not %q", inv.OrgID, o.Org)
		}
		if inv.AccountName != o.Account {
			return nil, fmt.Errorf("device: the invite is for account %q, not %q", inv.AccountName, o.Account)
		}
		admin, err := hybrid.ParsePublicKey(inv.AdminKey)
		if err != nil {
			return nil, fmt.Errorf("device: the organisation's admin key: %w", err)
		}
		org = &chain.Org{ID: inv.OrgID, AdminKey: admin}
		policy = inv.Policy.ChainPolicy()
	}
	if err := a.ensureKeystore(ctx); err != nil {
		return nil, err
	}
	idk, kemk, err := a.newKeys(lifecycle.AccountSetup)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*InitResult, error) {
		a.ks.RetireKey(idk.ID, lifecycle.Retirement)
		a.ks.RetireKey(kemk.ID, lifecycle.Retirement)
		return nil, err
	}
	rc, err := chain.GenerateRecoveryCode(rand.Reader)
	if err != nil {
		return fail(err)
	}
	rk, err := rc.Key()
	if err != nil {
		return fail(err)
	}
	defer rk.Destroy()
	name := deviceName(o.DeviceName)
	rec, bs, err := a.record(name, idk, kemk, attestFor{Type: chain.TypeGenesis})
	if err != nil {
		return fail(err)
	}
	d, err := chain.NewGenesis(a.now(), &chain.Genesis{Device: rec, Recovery: rk.Public(), Policy: policy, Org: org})
	if err != nil {
		return fail(err)
	}
	if err := a.signSubject(d, idk.ID, bs); err != nil {
		return fail(err)
	}
	if err := d.Sign(chain.RoleNewRecovery, rk); err != nil {
		return fail(err)
	}
	g, err := d.Link()
	if err != nil {
		return fail(err)
	}
	acct, err := cl.CreateAccount(ctx, o.Account, g, o.Invite)
	if err != nil {
		return fail(fmt.Errorf("device: registering the account: %w", err))
	}
	if acct != chain.AccountID(g.Hash()) && org == nil {
		return fail(fmt.Errorf("device: the server registered account %s for a genesis whose hash is %s", acct, g.Hash()))
	}
	a.cfg.AccountName, a.cfg.Account = o.Account, hex.EncodeToString(acct[:])
	a.cfg.Identity, a.cfg.KEM, a.cfg.DeviceName = idk.ID.String(), kemk.ID.String(), name
	a.cfg.Server = cl.Server()
	a.cfg.Status = StatusEnrolling
	if err := a.db.save(a.cfg); err != nil {
		return nil, err
	}
	cl.SetIdentity(&client.Identity{Account: acct, Device: a.deviceID(), Sign: a.signAs})
	if _, err := a.Sync(ctx, acct); err != nil { // verifies the genesis (cosigned for managed accounts) and activates
		return nil, err
	}
	return &InitResult{Account: acct, Device: a.deviceID(), RecoveryCode: rc, Fingerprint: chain.Fingerprint(acct)}, nil
}

func checkName(n string) error {
	if len(n) == 0 || len(n) > 64 {
		return fmt.Errorf("device: account name must be 1-64 characters")
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("device: account name %q: use only a-z, 0-9, '.', '_' and '-'", n)
		}
	}
	return nil
}

func deviceName(n string) string {
	if n != "" {
		return n
	}
	if h, err := osHostname(); err == nil && h != "" {
		if len(h) > chain.MaxNameLen {
			h = h[:chain.MaxNameLen]
		}
		return h
	}
	return "device"
}
