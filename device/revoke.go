package device

import (
	"context"
	"errors"
	"fmt"

	"github.com/enigm/enigm/chain"
)

// RevokeTarget describes a device about to be revoked, from this
// device's freshly verified chain.
type RevokeTarget struct {
	Device chain.DeviceID
	Name   string
	// Self: the target is this device; its keys are destroyed.
	Self bool
	// Last: the target is the account's last active device; afterwards only
	// the recovery code can bring the account back.
	Last bool
}

// RevokeOptions are the extra confirmations Revoke needs for the two
// revocations that cannot be undone from another device.
type RevokeOptions struct {
	ThisDevice bool // allow revoking this device itself
	LastDevice bool // allow revoking the account's last active device
}

// Errors of Revoke without the matching RevokeOptions.
var (
	// ErrRevokeThisDevice: the target is this device and
	// RevokeOptions.ThisDevice is not set.
	ErrRevokeThisDevice = errors.New("device: the device to revoke is this device (its keys will be destroyed)")
	// ErrRevokeLastDevice: the target is the account's last active device
	// and RevokeOptions.LastDevice is not set.
	ErrRevokeLastDevice = errors.New("device: the device to revoke is the account's last active device (only the recovery code can bring the account back)")
)

// CheckRevoke verifies the account's chain and describes target, so that a
// caller can ask for the confirmations Revoke will need.
func (a *Agent) CheckRevoke(ctx context.Context, target chain.DeviceID) (RevokeTarget, error) {
	_, st, err := a.own(ctx)
	if err != nil {
		return RevokeTarget{}, err
	}
	return revokeTarget(a, st, target)
}

func revokeTarget(a *Agent, st *chain.State, target chain.DeviceID) (RevokeTarget, error) {
	d, ok := st.Device(target)
	if !ok || d.Status != chain.StatusActive {
		return RevokeTarget{}, fmt.Errorf("device: %s is not an active device of this account", target)
	}
	return RevokeTarget{Device: target, Name: d.Name, Self: target == a.deviceID(), Last: st.ActiveCount() == 1}, nil
}

// Revoke revokes a device of this account (this device's signature). If it
// is this device, its keys are destroyed once the chain shows it. Revoking
// this device needs o.ThisDevice and revoking the last active device needs
// o.LastDevice (ErrRevokeThisDevice, ErrRevokeLastDevice), judged on the
// chain verified here, at the moment of signing.
func (a *Agent) Revoke(ctx context.Context, target chain.DeviceID, o RevokeOptions) (chain.Head, error) {
	var acct chain.AccountID
	head, err := a.retryOnConflict(ctx, func(st *chain.State) (chain.Head, error) {
		acct = st.Account()
		t, err := revokeTarget(a, st, target)
		if err != nil {
			return chain.Head{}, err
		}
		if t.Self && !o.ThisDevice {
			return chain.Head{}, ErrRevokeThisDevice
		}
		if t.Last && !o.LastDevice {
			return chain.Head{}, ErrRevokeLastDevice
		}
		return a.appendSigned(ctx, st, &chain.RevokeDevice{ID: target}, nil)
	})
	if err != nil {
		return head, err
	}
	if _, err := a.Sync(ctx, acct); err != nil && !errors.Is(err, ErrRevoked) {
		return head, err
	}
	return head, nil
}
