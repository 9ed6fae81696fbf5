package device

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/envelope"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
)

// SendResult reports what the relay accepted.
type SendResult struct {
	Accepted []string
	Rejected []client.Rejected
}

// recipients are the active devices of the peer's verified chain plus this
// account's other active devices (message sync).
func (a *Agent) recipients(ctx context.Context, to chain.AccountID) ([]envelope.Recipient, chain.AccountID, error) {
	own, ownSt, err := a.own(ctx)
	if err != nil {
		return nil, own, err
	}
	out := envelope.Eligible(ownSt, a.deviceID())
	if to != own {
		peer, err := a.Sync(ctx, to)
		if err != nil {
			return nil, own, fmt.Errorf("device: verifying %s's chain: %w", to, err)
		}
		out = append(envelope.Eligible(peer, chain.DeviceID{}), out...)
	}
	if len(out) == 0 {
		return nil, own, errors.New("device: no eligible device to send to")
	}
	return out, own, nil
}

// outbound is what sealing to an account takes: the peer, this account,
// the recipients (recipients above) and this device as the sender.
type outbound struct {
	peer, own chain.AccountID
	rcpts     []envelope.Recipient
	from      envelope.From
}

// outbound unlocks the keystore and gathers what sealing to the account
// to (a name or an id) takes.
func (a *Agent) outbound(ctx context.Context, to string) (*outbound, error) {
	if err := a.unlock(ctx); err != nil {
		return nil, err
	}
	peer, err := a.resolve(ctx, to)
	if err != nil {
		return nil, err
	}
	rcpts, own, err := a.recipients(ctx, peer)
	if err != nil {
		return nil, err
	}
	k, err := a.identity()
	if err != nil {
		return nil, err
	}
	return &outbound{peer: peer, own: own, rcpts: rcpts,
		from: envelope.From{Account: own, Device: a.deviceID(), Identity: k}}, nil
}

// relay hands a sealed message to the relay in its message form (the
// shared parts once, one entry per device); the relay splits it into the
// devices' envelopes.
func (a *Agent) relay(ctx context.Context, out *envelope.Outgoing) (*SendResult, error) {
	cl, _ := a.client()
	acc, rej, err := cl.Send(ctx, out.Message)
	if err != nil {
		return nil, a.checkServerRevoked(ctx, err)
	}
	return &SendResult{Accepted: acc, Rejected: rej}, nil
}

// Send seals body under a fresh message key (secure messaging setup) to
// every eligible device of the peer account and this account's other
// devices, and hands the message to the relay in its message form. The message key is
// destroyed afterwards.
func (a *Agent) Send(ctx context.Context, to string, body []byte) (*SendResult, error) {
	o, err := a.outbound(ctx, to)
	if err != nil {
		return nil, err
	}
	info, err := a.ks.Generate(keystore.ClassSession, keystore.GenerateOptions{Cause: lifecycle.MessagingSetup, Activate: true, TTL: 5 * time.Minute})
	if err != nil {
		return nil, err
	}
	sk, err := a.ks.Session(info.ID)
	if err != nil {
		return nil, err
	}
	defer sk.Destroy()
	out, err := envelope.SealMessage(sk, o.from, envelope.Message{Kind: envelope.KindMessage, Conversation: o.peer, Body: body, SentAt: a.now()}, o.rcpts)
	if err != nil {
		return nil, err
	}
	return a.relay(ctx, out)
}

// Received is one opened message.
type Received struct {
	ID         string
	From       chain.AccountID
	FromDevice chain.DeviceID
	SentAt     time.Time
	Body       []byte
}

// Skipped is an envelope that was refused, with why.
type Skipped struct {
	ID     string
	Reason string
}

// ReceiveResult holds opened messages, call invitations kept for
// `call accept`, refused envelopes (acknowledged: they can never open) and
// deferred ones (left queued after a passing failure, such as the sender's
// chain being unreachable).
type ReceiveResult struct {
	Messages []Received
	Calls    []string
	Skipped  []Skipped
	Deferred []Skipped
}

// transient reports failures that may pass: the server or the network,
// a cancelled request, a locked keystore.
func transient(err error) bool {
	return errors.Is(err, client.ErrUnavailable) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, keystore.ErrLocked) || errors.Is(err, errNotRemembered)
}

// errNotRemembered: an envelope opened but could not be recorded as seen;
// it stays queued (not shown, not acknowledged) so that it is never shown
// without replay protection.
var errNotRemembered = errors.New("device: could not record the envelope as opened in agent.db")

// kems maps the fingerprints of this device's KEM keys that may still
// decrypt (active, or superseded within their grace period) to handles.
func (a *Agent) kems() (map[[32]byte]*keystore.KEMKey, error) {
	keys, err := a.ks.List()
	if err != nil {
		return nil, err
	}
	out := map[[32]byte]*keystore.KEMKey{}
	for _, k := range keys {
		if k.Class != keystore.ClassKEM || (k.State != lifecycle.Active && k.State != lifecycle.Superseded) {
			continue
		}
		h, err := a.ks.KEM(k.ID)
		if err != nil {
			return nil, err
		}
		out[kemHash(k.Public)] = h
	}
	return out, nil
}

// Receive fetches this device's envelopes, verifies each sender against
// its verified chain, opens messages (each message key is installed in the
// keystore through the KEM key, used once and destroyed) and keeps call
// invitations for AcceptCall. Envelopes that opened or can never open are
// acknowledged (a refused one is not fetched again); one that failed for a
// passing reason stays queued. Each sender's chain is verified once per
// call, however many envelopes it sent.
func (a *Agent) Receive(ctx context.Context) (*ReceiveResult, error) {
	own, _, err := a.own(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.unlock(ctx); err != nil {
		return nil, err
	}
	cl, _ := a.client()
	envs, err := cl.Fetch(ctx, 500)
	if err != nil {
		return nil, a.checkServerRevoked(ctx, err)
	}
	kems, err := a.kems()
	if err != nil {
		return nil, err
	}
	res := &ReceiveResult{}
	var ack []string
	senders := map[chain.AccountID]*chain.State{}
	for _, e := range envs {
		m, callID, err := a.open(ctx, own, kems, senders, e)
		if err != nil && transient(err) {
			// Left queued: the next receive tries again.
			res.Deferred = append(res.Deferred, Skipped{ID: e.ID, Reason: err.Error()})
			continue
		}
		ack = append(ack, e.ID)
		switch {
		case err != nil:
			res.Skipped = append(res.Skipped, Skipped{ID: e.ID, Reason: err.Error()})
		case callID != "":
			res.Calls = append(res.Calls, callID)
		default:
			res.Messages = append(res.Messages, *m)
		}
	}
	if err := cl.Ack(ctx, ack); err != nil {
		return res, err
	}
	return res, nil
}

// open verifies and opens one envelope; senders caches the senders'
// chains verified during this receive.
func (a *Agent) open(ctx context.Context, own chain.AccountID, kems map[[32]byte]*keystore.KEMKey, senders map[chain.AccountID]*chain.State, e client.Envelope) (*Received, string, error) {
	p, err := envelope.Parse(e.Ciphertext)
	if err != nil {
		return nil, "", err
	}
	if err := p.For(own, a.deviceID()); err != nil {
		return nil, "", err
	}
	if err := a.db.checkReplay(p, a.now()); err != nil {
		return nil, "", err
	}
	if p.Kind == envelope.KindCall {
		if pending, err := a.db.inbox(p.CallID); err != nil {
			return nil, "", err
		} else if len(pending) > 0 {
			return nil, "", fmt.Errorf("%w: an invitation to call %s is already waiting for call accept", ErrReplay, p.CallID)
		}
	}
	sender := senders[p.FromAccount]
	if sender == nil {
		if sender, err = a.Sync(ctx, p.FromAccount); err != nil {
			return nil, "", fmt.Errorf("verifying the sender's chain: %w", err)
		}
		senders[p.FromAccount] = sender
	}
	if err := p.Verify(sender); err != nil {
		return nil, "", err
	}
	if p.Kind == envelope.KindCall {
		if err := a.db.putInbox(p.CallID, e.Ciphertext); err != nil {
			return nil, "", err
		}
		return nil, p.CallID, nil
	}
	sk, err := p.OpenKey(kems, time.Minute)
	if err != nil {
		return nil, "", err
	}
	defer sk.Destroy()
	body, err := p.OpenBody(sk)
	if err != nil {
		return nil, "", err
	}
	// Remembered before Receive acknowledges it: a relay that delivers it
	// again is refused.
	if err := a.db.markSeen(p, a.now()); err != nil {
		return nil, "", fmt.Errorf("%w: %v", errNotRemembered, err)
	}
	return &Received{ID: e.ID, From: p.FromAccount, FromDevice: p.FromDevice, SentAt: p.SentAt, Body: body}, "", nil
}

// CallResult describes a call this device set up.
type CallResult struct {
	CallID      string
	Fingerprint string
	Expires     time.Time
	Send        *SendResult
}

// Call sets up a secure call: a call key is generated in this keystore
// (secure call setup, TTL-bounded), sealed to the peer's eligible devices
// and this account's other devices, and kept until EndCall or its TTL.
// Both ends show the same fingerprint.
func (a *Agent) Call(ctx context.Context, to string, ttl time.Duration) (*CallResult, error) {
	o, err := a.outbound(ctx, to)
	if err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = time.Hour
	}
	info, err := a.ks.Generate(keystore.ClassSession, keystore.GenerateOptions{Cause: lifecycle.CallSetup, Activate: true, TTL: ttl, Persist: true})
	if err != nil {
		return nil, err
	}
	sk, err := a.ks.Session(info.ID)
	if err != nil {
		return nil, err
	}
	idb := make([]byte, 12)
	rand.Read(idb)
	callID := "call-" + hex.EncodeToString(idb)
	out, err := envelope.SealMessage(sk, o.from, envelope.Message{Kind: envelope.KindCall, Conversation: o.peer, CallID: callID, SentAt: a.now()}, o.rcpts)
	if err != nil {
		sk.Destroy()
		return nil, err
	}
	sent, err := a.relay(ctx, out)
	if err != nil {
		sk.Destroy()
		return nil, err
	}
	fp, err := envelope.Fingerprint(sk, callID, o.own, a.deviceID(), o.peer)
	if err != nil {
		return nil, err
	}
	if a.cfg.Calls == nil {
		a.cfg.Calls = map[string]string{}
	}
	a.cfg.Calls[callID] = info.ID.String()
	if err := a.db.save(a.cfg); err != nil {
		return nil, err
	}
	return &CallResult{CallID: callID, Fingerprint: fp, Expires: info.Expires, Send: sent}, nil
}

// AcceptCall joins a call this device was invited to: the call key is
// installed in this keystore (memory only: it is destroyed when the process
// ends or the call ends) and its fingerprint returned.
func (a *Agent) AcceptCall(ctx context.Context, callID string) (string, error) {
	own, _, err := a.own(ctx)
	if err != nil {
		return "", err
	}
	if err := a.unlock(ctx); err != nil {
		return "", err
	}
	raw, err := a.db.inbox(callID)
	if err != nil {
		return "", err
	}
	if len(raw) == 0 {
		if _, err := a.Receive(ctx); err != nil {
			return "", err
		}
		if raw, err = a.db.inbox(callID); err != nil {
			return "", err
		}
	}
	if len(raw) == 0 {
		return "", fmt.Errorf("device: no invitation to call %s reached this device", callID)
	}
	p, err := envelope.Parse(raw)
	if err != nil {
		return "", err
	}
	if err := p.For(own, a.deviceID()); err != nil {
		return "", err
	}
	sender, err := a.Sync(ctx, p.FromAccount)
	if err != nil {
		return "", err
	}
	if err := p.Verify(sender); err != nil {
		return "", err
	}
	if err := a.db.checkReplay(p, a.now()); err != nil {
		a.db.dropInbox(callID)
		return "", err
	}
	kems, err := a.kems()
	if err != nil {
		return "", err
	}
	sk, err := p.OpenKey(kems, time.Hour)
	if err != nil {
		return "", err
	}
	fp, err := p.Fingerprint(sk)
	if err != nil {
		sk.Destroy()
		return "", err
	}
	// The call's key is installed: its envelope and call id are remembered,
	// so a relay that delivers the invitation again is refused.
	if err := a.db.markSeen(p, a.now()); err != nil {
		sk.Destroy()
		return "", err
	}
	a.db.dropInbox(callID)
	return fp, nil
}

// EndCall destroys the key of a call this device set up.
func (a *Agent) EndCall(ctx context.Context, callID string) error {
	id, ok := a.cfg.Calls[callID]
	if !ok {
		return fmt.Errorf("device: no call %s was set up on this device", callID)
	}
	kid, err := keystore.ParseKeyID(id)
	if err != nil {
		return err
	}
	err = a.ks.RetireKey(kid, lifecycle.Retirement)
	delete(a.cfg.Calls, callID)
	return errors.Join(err, a.db.save(a.cfg))
}

// DeviceInfo is one device of a verified chain.
type DeviceInfo struct {
	Device     chain.DeviceID
	Name       string
	State      string
	Protection string
	ApprovedBy string
	AddedAt    time.Time
	AddedSeq   uint64
	EndedAt    time.Time
	Self       bool
}

// Devices returns the verified device list of an account (this device's
// own when ref is empty).
func (a *Agent) Devices(ctx context.Context, ref string) (chain.AccountID, []DeviceInfo, chain.Head, error) {
	var acct chain.AccountID
	var err error
	if ref == "" {
		var ok bool
		if acct, ok = a.cfg.account(); !ok {
			return acct, nil, chain.Head{}, ErrNoAccount
		}
	} else if acct, err = a.resolve(ctx, ref); err != nil {
		return acct, nil, chain.Head{}, err
	}
	st, err := a.Sync(ctx, acct)
	if err != nil && st == nil {
		return acct, nil, chain.Head{}, err
	}
	var out []DeviceInfo
	for _, d := range st.Devices() {
		di := DeviceInfo{Device: d.ID, Name: d.Name, State: d.Status.String(), Protection: string(d.Level),
			ApprovedBy: approvedBy(d), AddedAt: d.AddedAt, AddedSeq: d.AddedSeq, EndedAt: d.EndedAt}
		if a.ks != nil && d.ID == a.deviceID() && a.cfg.Account == hex.EncodeToString(acct[:]) {
			di.Self = true
		}
		out = append(out, di)
	}
	return acct, out, st.Head(), err
}

func approvedBy(d chain.DeviceRecord) string {
	switch d.ApprovedBy.Kind {
	case chain.ByGenesis:
		return "genesis"
	case chain.ByDevice:
		s := hex.EncodeToString(d.ApprovedBy.Device[:])
		if d.ApprovedBy.Org {
			s += "+org"
		}
		return s
	case chain.ByRecovery:
		if d.ApprovedBy.Org {
			return "recovery+org"
		}
		return "recovery"
	}
	return "org"
}

// StatusInfo describes this device.
type StatusInfo struct {
	Account     string
	AccountID   chain.AccountID
	HasAccount  bool
	Device      chain.DeviceID
	State       string
	Locked      bool
	Protection  string
	Server      string
	Head        chain.Head
	Fingerprint string
	Pending     *Pending
	// Recovery is a recovery of the account pending in the verified chain
	// for a device other than this one (the one an active device can veto),
	// or nil.
	Recovery *RecoveryInfo
}

// Status reports this device's state from its last verified chain (and the
// server, when online is set).
func (a *Agent) Status(ctx context.Context, online bool) (*StatusInfo, error) {
	si := &StatusInfo{Account: a.cfg.AccountName, State: a.statusWord(), Server: a.cfg.Server, Locked: true, Pending: a.Pending()}
	if a.opts.Server != "" {
		si.Server = a.opts.Server
	}
	if a.ks != nil {
		si.Locked = !a.ks.State().Unlocked
		si.Device = a.deviceID()
		st, err := a.ks.Status()
		if err != nil {
			return nil, err
		}
		si.Protection = string(st.Protection)
	}
	acct, ok := a.cfg.account()
	if !ok {
		return si, nil
	}
	si.AccountID, si.HasAccount, si.Fingerprint = acct, true, chain.Fingerprint(acct)
	var st *chain.State
	var err error
	if online {
		st, err = a.Sync(ctx, acct)
	} else {
		st, err = client.Load(acct, a.db, a.now(), a.verifyOpts()...)
	}
	if st != nil {
		si.Head = st.Head()
		if ri := recoveryInfo(st); ri != nil && (a.ks == nil || ri.Device != a.deviceID()) {
			if online {
				a.witnessRecovery(ctx, acct, st, ri)
			}
			si.Recovery = ri
		}
	}
	si.State = a.statusWord()
	if err != nil && !errors.Is(err, ErrRevoked) {
		return si, err
	}
	return si, nil
}
