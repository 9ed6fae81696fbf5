package device

import (
	"context"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
)

// Rotate replaces this device's identity and KEM keys: new keys are
// created, the rotate_keys link is signed by the old identity key and the
// new one (and the binding key), and once Command accepted it the new keys
// become active and the old ones superseded.
func (a *Agent) Rotate(ctx context.Context) (identity, kem keystore.KeyID, err error) {
	acct, st, err := a.own(ctx)
	if err != nil {
		return identity, kem, err
	}
	if err := a.unlock(ctx); err != nil {
		return identity, kem, err
	}
	oldID, err := a.keyID(a.cfg.Identity)
	if err != nil {
		return identity, kem, err
	}
	oldKEM, err := a.keyID(a.cfg.KEM)
	if err != nil {
		return identity, kem, err
	}
	nid, nkem, err := a.newKeys(lifecycle.Rotation)
	if err != nil {
		return identity, kem, err
	}
	abort := func(err error) (keystore.KeyID, keystore.KeyID, error) {
		a.ks.RetireKey(nid.ID, lifecycle.Retirement)
		a.ks.RetireKey(nkem.ID, lifecycle.Retirement)
		return identity, kem, err
	}
	npub, err := hybrid.ParsePublicKey(nid.Public)
	if err != nil {
		return abort(err)
	}
	d, err := chain.NewDraft(st, a.linkTime(st), &chain.RotateKeys{ID: a.deviceID(), Identity: npub, KEM: nkem.Public})
	if err != nil {
		return abort(err)
	}
	ok, err := a.ks.Identity(oldID)
	if err != nil {
		return abort(err)
	}
	oldSigner, err := newSigner(ok, false)
	if err != nil {
		return abort(err)
	}
	if err := d.SignDevice(a.deviceID(), oldSigner); err != nil {
		return abort(err)
	}
	bs, err := a.binding()
	if err != nil {
		return abort(err)
	}
	l, err := a.subjectLink(d, nid.ID, bs)
	if err != nil {
		return abort(err)
	}
	cl, _ := a.client()
	if _, err := cl.AppendLink(ctx, l); err != nil {
		return abort(a.checkServerRevoked(ctx, err))
	}
	// The chain now names the new keys: promote them locally.
	if err := a.ks.Promote(oldID, nid.ID, keystore.RotateOptions{}); err != nil {
		return identity, kem, err
	}
	if err := a.ks.Promote(oldKEM, nkem.ID, keystore.RotateOptions{}); err != nil {
		return identity, kem, err
	}
	a.cfg.Identity, a.cfg.KEM = nid.ID.String(), nkem.ID.String()
	if err := a.db.save(a.cfg); err != nil {
		return identity, kem, err
	}
	cl.SetIdentity(&client.Identity{Account: acct, Device: a.deviceID(), Sign: a.signAs})
	_, err = a.Sync(ctx, acct)
	return nid.ID, nkem.ID, err
}
