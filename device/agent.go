// Package device is the device agent: it ties the keystore, the chain and
// the Command client together into the lifecycle events of the key
// management model — account setup, device enrollment, approval, secure
// messaging and call setup, rotation, replacement, recovery, revocation.
//
// Every key is generated in this device's keystore at the event that needs
// it, with that event as its lifecycle cause. Nothing the server says is
// trusted: chains are verified with the chain package against the heads
// this device verified before; eligibility for messages and calls comes
// from verified chain states; and the device destroys its keys only when
// its own verified chain shows it revoked or retired — never because the
// server says so.
package device

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/enigm/enigm/attestation"
	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

// Errors.
var (
	// ErrNoAccount: this device has no account yet.
	ErrNoAccount = errors.New("device: this device has no account yet")
	// ErrHasAccount: this device already belongs to an account.
	ErrHasAccount = errors.New("device: this device already belongs to an account")
	// ErrRevoked: this device's verified chain shows it revoked or
	// retired; its keys were destroyed.
	ErrRevoked = errors.New("device: this device is no longer active in its account")
	// ErrNotActive: the device is not (yet) active.
	ErrNotActive = errors.New("device: this device is not active in its account")
	// ErrPairingCode: the pairing code does not match the request.
	ErrPairingCode = errors.New("device: the pairing code does not match this enrollment request")
	// ErrNoServer: no server URL.
	ErrNoServer = errors.New("device: no Command server is known to this device")
	// ErrEnrollmentPending: an enrollment of this device is already
	// pending; it completes once approved (Finish).
	ErrEnrollmentPending = errors.New("device: an enrollment of this device is already pending")
	// ErrWrongRecoveryCode: the recovery code is not this account's.
	ErrWrongRecoveryCode = errors.New("device: this recovery code does not belong to the account")
)

// Options configure an agent.
type Options struct {
	// Home is the device home (keystore, agent database).
	Home string
	// Server overrides the saved server URL.
	Server string
	// Passphrase returns the keystore passphrase; called when keys are
	// needed. For a new keystore it is called with confirm set. The agent
	// clears the returned slice after use: return a fresh one each time.
	Passphrase func(confirm bool) ([]byte, error)
	// Backend builds the keystore backend named in the keystore's header.
	Backend func(name string) (backend.Backend, error)
	// NewBackend picks the backend for a keystore created by init, enroll
	// or recover on a fresh device.
	NewBackend func() (backend.Backend, error)
	// Clock; nil means time.Now.
	Clock func() time.Time
	// HTTP client; nil means a default with a timeout.
	HTTP *http.Client
	// Progress receives human progress lines while waiting; nil discards.
	Progress io.Writer
	// Poll is the interval of waits; 0 means 1s.
	Poll time.Duration
	// LogWait bounds how long a sync waits for links that are not in
	// the transparency log yet (Command integrates new links within about
	// a second); 0 means DefaultLogWait.
	LogWait time.Duration
	// Attestation judges attestation evidence in the chains this device
	// verifies (e.g. attestation.TPM with the attestation keys the
	// deployment trusts). A chain whose policy requires verified
	// attestation does not verify without one.
	Attestation chain.AttestationVerifier
}

// Agent is the device agent for one home. It is not safe for concurrent use.
type Agent struct {
	opts Options
	db   *agentDB
	cfg  *config
	ks   *keystore.Store
	cl   *client.Client
	// verified holds, per account, the state of the links agent.db holds
	// (every sync goes through chainState, which keeps the two in step), so
	// a process verifies each stored chain once, not at every sync.
	verified map[chain.AccountID]*chain.State
	// logSynced is when this process last accepted the server's log
	// checkpoint (wall clock); noLog that the server publishes no log
	// and this device pinned none.
	logSynced time.Time
	noLog     bool
	// logCfg is the parsed log configuration (without the account's
	// witness policy: logPolicy adds it); logRefusal why the
	// server's newest checkpoint was last refused while the stored one
	// stayed in force.
	logCfg     *client.LogPolicy
	logRefusal error
	// orgPolicy is the parsed witness policy of the account's chain;
	// joining the account an enrollment or recovery joins (joinTarget),
	// whose witness policy binds this device before it is its own.
	orgPolicy *parsedOrgPolicy
	joining   *chain.AccountID
}

// Open opens the agent of home. It does not need the passphrase until keys
// are used.
func Open(opts Options) (*Agent, error) {
	if opts.Home == "" {
		return nil, errors.New("device: no home directory")
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if err := os.MkdirAll(opts.Home, 0o700); err != nil {
		return nil, err
	}
	if st, err := os.Stat(opts.Home); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o (chmod 700 %s)", keystore.ErrPermissions, opts.Home, st.Mode().Perm(), opts.Home)
	}
	db, err := openAgentDB(opts.Home)
	if err != nil {
		return nil, err
	}
	cfg, err := db.config()
	if err != nil {
		db.close()
		return nil, err
	}
	a := &Agent{opts: opts, db: db, cfg: cfg}
	if keystore.Exists(opts.Home) {
		if a.ks, err = keystore.Open(opts.Home, keystore.Options{Backend: opts.Backend, Clock: opts.Clock}); err != nil {
			db.close()
			return nil, err
		}
	}
	return a, nil
}

// Close locks and closes everything.
func (a *Agent) Close() error {
	var err error
	if a.ks != nil {
		err = a.ks.Close()
	}
	return errors.Join(err, a.db.close())
}

func (a *Agent) verifyOpts() []chain.Option {
	if a.opts.Attestation == nil {
		return nil
	}
	return []chain.Option{chain.WithAttestationVerifier(a.opts.Attestation)}
}

func (a *Agent) now() time.Time {
	if a.opts.Clock != nil {
		return a.opts.Clock()
	}
	return time.Now()
}

func (a *Agent) progress(format string, args ...any) {
	fmt.Fprintf(a.opts.Progress, format+"\n", args...)
}

// Keystore returns the device's keystore (nil before the first key).
func (a *Agent) Keystore() *keystore.Store { return a.ks }

// client returns the Command client for the configured server.
func (a *Agent) client() (*client.Client, error) {
	if a.cl != nil {
		return a.cl, nil
	}
	srv := a.opts.Server
	if srv == "" {
		srv = a.cfg.Server
	}
	if srv == "" {
		return nil, ErrNoServer
	}
	cl, err := client.New(srv, a.opts.HTTP)
	if err != nil {
		return nil, err
	}
	a.cl = cl
	if acct, ok := a.cfg.account(); ok && a.ks != nil && a.cfg.Identity != "" {
		cl.SetIdentity(&client.Identity{Account: acct, Device: a.deviceID(), Sign: a.signAs})
	}
	return cl, nil
}

// ensureKeystore creates the keystore on a fresh device, or unlocks the
// existing one.
func (a *Agent) ensureKeystore(ctx context.Context) error {
	if a.ks == nil {
		if a.opts.NewBackend == nil || a.opts.Passphrase == nil {
			return errors.New("device: no keystore and no way to create one")
		}
		b, err := a.opts.NewBackend()
		if err != nil {
			return err
		}
		p, err := a.opts.Passphrase(true)
		if err != nil {
			return err
		}
		defer clear(p)
		ks, err := keystore.Init(ctx, a.opts.Home, b, p, keystore.InitOptions{Options: keystore.Options{Backend: a.opts.Backend, Clock: a.opts.Clock}})
		if err != nil {
			return err
		}
		a.ks = ks
		ks.SetAppAuthorized(true)
		return nil
	}
	return a.unlock(ctx)
}

// reauthAfter is how old the last user authentication may be before the
// agent asks for the passphrase again: a little under the identity key's
// default requirement (5 minutes), so a long wait (recovery's waiting
// period, an admin's approval) ends with a fresh authentication instead of
// a denial.
const reauthAfter = 4 * time.Minute

func (a *Agent) unlock(ctx context.Context) error {
	// Ask the keystore, not a remembered flag: it may have been locked
	// since (Lock, the device-lock signal, a hardware refusal).
	if a.ks != nil {
		if st := a.ks.State(); st.Unlocked && a.now().Sub(st.LastAuth) < reauthAfter {
			return nil
		}
	}
	if a.ks == nil {
		return ErrNoAccount
	}
	if a.opts.Passphrase == nil {
		return keystore.ErrLocked
	}
	p, err := a.opts.Passphrase(false)
	if err != nil {
		return err
	}
	defer clear(p)
	if err := a.ks.Unlock(ctx, p); err != nil {
		return err
	}
	// The passphrase was entered for this command: the user authenticated
	// and this process is the authorized app.
	a.ks.SetAppAuthorized(true)
	return nil
}

func (a *Agent) deviceID() chain.DeviceID { return chain.DeviceID(a.ks.DeviceID()) }

func (a *Agent) keyID(hexID string) (keystore.KeyID, error) {
	if hexID == "" {
		return keystore.KeyID{}, ErrNoAccount
	}
	return keystore.ParseKeyID(hexID)
}

func (a *Agent) identity() (*keystore.IdentityKey, error) {
	id, err := a.keyID(a.cfg.Identity)
	if err != nil {
		return nil, err
	}
	return a.ks.Identity(id)
}

// signAs signs for the client's login: the auth-token purpose only.
func (a *Agent) signAs(purpose string, msg []byte) ([]byte, error) {
	if purpose != keystore.PurposeAuthToken.String() {
		return nil, fmt.Errorf("device: the login signs only for %q, not %q", keystore.PurposeAuthToken, purpose)
	}
	if err := a.unlock(context.Background()); err != nil {
		return nil, err
	}
	k, err := a.identity()
	if err != nil {
		return nil, err
	}
	return k.Sign(keystore.PurposeAuthToken, msg)
}

// newSigner returns the chain signer of a keystore identity key: it signs
// only the links and approvals package chain builds. possession signs with
// the "prove possession" operation, which a created (not yet active) key
// may perform for its own enrollment.
func newSigner(k *keystore.IdentityKey, possession bool) (chain.Signer, error) {
	return k.ChainSigner(possession)
}

// bindingSigner is the keystore's hardware binding key as chain signs with
// it: through chain requests only (keystore.BindingKey.ChainSigner).
type bindingSigner struct {
	chain.BindingRequestSigner
	k   *keystore.BindingKey
	pub *ecdsa.PublicKey
}

// binding returns the hardware binding key signer, or nil on software-only
// stores.
func (a *Agent) binding() (*bindingSigner, error) {
	bk, err := a.ks.Binding()
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pub, err := bk.Public()
	if err != nil {
		return nil, err
	}
	cs, err := bk.ChainSigner()
	if err != nil {
		return nil, err
	}
	return &bindingSigner{BindingRequestSigner: cs, k: bk, pub: pub}, nil
}

// newKeys generates an identity and a KEM key for cause, created (they
// become active when the chain accepts them).
func (a *Agent) newKeys(cause lifecycle.Cause) (id, kem keystore.KeyInfo, err error) {
	if id, err = a.ks.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: cause}); err != nil {
		return
	}
	kem, err = a.ks.Generate(keystore.ClassKEM, keystore.GenerateOptions{Cause: cause})
	if err != nil {
		a.ks.RetireKey(id.ID, lifecycle.Retirement)
	}
	return
}

// attestFor says which link a device record is for, so that its hardware
// can attest over attestation.Nonce of it.
type attestFor struct {
	Type    chain.LinkType
	Account chain.AccountID
	Prev    chain.Hash // the head the link will follow; zero for genesis
	Nonce   []byte     // the enrollment request's nonce, when there is one
}

// record builds this device's public chain record. When the keystore's
// backend can attest its binding key, the record carries the evidence,
// bound to the link it is for.
func (a *Agent) record(name string, id, kem keystore.KeyInfo, af attestFor) (chain.Device, *bindingSigner, error) {
	pub, err := hybrid.ParsePublicKey(id.Public)
	if err != nil {
		return chain.Device{}, nil, err
	}
	st, err := a.ks.Status()
	if err != nil {
		return chain.Device{}, nil, err
	}
	d := chain.Device{ID: a.deviceID(), Name: name, Identity: pub, KEM: kem.Public, Level: chain.Level(st.Protection)}
	bs, err := a.binding()
	if err != nil {
		return d, nil, err
	}
	if bs != nil {
		d.Binding = bs.pub
		if len(st.Attestation) > 0 {
			nonce, err := attestation.Nonce(chain.AttestationInput{Type: af.Type, Account: af.Account, Prev: af.Prev, Nonce: af.Nonce, Device: &d})
			if err != nil {
				return d, bs, err
			}
			ev, err := bs.k.Attest(context.Background(), nonce)
			if err != nil {
				return d, bs, fmt.Errorf("device: attesting the binding key: %w", err)
			}
			d.Evidence = &chain.Evidence{Type: ev.Type, Data: ev.Data}
		}
	}
	return d, bs, nil
}

// joinTarget is where an enrollment or a recovery into the account ref
// (a name or an id) starts: the client, the account and its verified
// chain.
func (a *Agent) joinTarget(ctx context.Context, ref string) (*client.Client, chain.AccountID, *chain.State, error) {
	cl, err := a.client()
	if err != nil {
		return nil, chain.AccountID{}, nil, err
	}
	acct, err := a.resolve(ctx, ref)
	if err != nil {
		return nil, chain.AccountID{}, nil, err
	}
	a.joining = &acct
	st, err := a.chainState(ctx, acct)
	if err != nil {
		return nil, chain.AccountID{}, nil, err
	}
	return cl, acct, st, nil
}

// dropNewKeys retires the keys made for a join request Command refused.
func (a *Agent) dropNewKeys(idk, kemk keystore.KeyInfo) {
	a.ks.RetireKey(idk.ID, lifecycle.Retirement)
	a.ks.RetireKey(kemk.ID, lifecycle.Retirement)
}

// saveJoin stores a join request Command accepted: the account (ref as the
// user named it; no name when ref was an id), the new keys, the device's
// status and what is pending, and makes the client sign as the new device.
func (a *Agent) saveJoin(cl *client.Client, ref string, acct chain.AccountID, idk, kemk keystore.KeyInfo, name, status string, p *pending) error {
	a.cfg.AccountName, a.cfg.Account = ref, hex.EncodeToString(acct[:])
	if _, err := client.ParseAccountID(ref); err == nil {
		a.cfg.AccountName = ""
	}
	a.cfg.Identity, a.cfg.KEM, a.cfg.DeviceName, a.cfg.Server = idk.ID.String(), kemk.ID.String(), name, cl.Server()
	a.cfg.Status = status
	a.cfg.Pending = p
	if err := a.db.save(a.cfg); err != nil {
		return err
	}
	cl.SetIdentity(&client.Identity{Account: acct, Device: a.deviceID(), Sign: a.signAs})
	return nil
}

// subjectLink signs d as its subject (signSubject) and returns the link.
func (a *Agent) subjectLink(d *chain.Draft, id keystore.KeyID, bs *bindingSigner) (*chain.Link, error) {
	if err := a.signSubject(d, id, bs); err != nil {
		return nil, err
	}
	return d.Link()
}

// signSubject adds the new keys' proofs of possession to a draft.
func (a *Agent) signSubject(d *chain.Draft, id keystore.KeyID, bs *bindingSigner) error {
	k, err := a.ks.Identity(id)
	if err != nil {
		return err
	}
	s, err := newSigner(k, true)
	if err != nil {
		return err
	}
	if err := d.Sign(chain.RoleSubject, s); err != nil {
		return err
	}
	if bs != nil {
		return d.SignBinding(bs, nil)
	}
	return nil
}

// activate turns the device's created keys active once the chain accepted
// them, and records the association.
func (a *Agent) activate(acct chain.AccountID, cause lifecycle.Cause) error {
	for _, h := range []string{a.cfg.Identity, a.cfg.KEM} {
		id, err := a.keyID(h)
		if err != nil {
			return err
		}
		info, err := a.ks.Info(id)
		if err != nil {
			return err
		}
		if info.State == lifecycle.Created {
			if err := a.ks.Activate(id, cause); err != nil {
				return err
			}
		}
	}
	if err := a.ks.SetAssociation(policy.Associated, acct[:]); err != nil {
		return err
	}
	a.cfg.Status, a.cfg.Pending = StatusActive, nil
	return a.db.save(a.cfg)
}

// resolve turns an account reference (a name, or a 64-digit hex id) into
// an account id, pinning names on first use.
func (a *Agent) resolve(ctx context.Context, ref string) (chain.AccountID, error) {
	if acct, err := client.ParseAccountID(ref); err == nil {
		return acct, nil
	}
	if a.cfg.Contacts == nil {
		a.cfg.Contacts = map[string]string{}
	}
	if pinned, ok := a.cfg.Contacts[ref]; ok {
		return client.ParseAccountID(pinned)
	}
	if ref == a.cfg.AccountName {
		if acct, ok := a.cfg.account(); ok {
			return acct, nil
		}
	}
	cl, err := a.client()
	if err != nil {
		return chain.AccountID{}, err
	}
	acct, err := cl.LookupName(ctx, ref)
	if err != nil {
		return acct, fmt.Errorf("device: looking up account %q: %w", ref, err)
	}
	a.cfg.Contacts[ref] = hex.EncodeToString(acct[:])
	return acct, a.db.save(a.cfg)
}

// NameOf returns the name this device knows an account by (its own, or one
// pinned at first use), or "".
func (a *Agent) NameOf(acct chain.AccountID) string {
	id := hex.EncodeToString(acct[:])
	if a.cfg.Account == id {
		return a.cfg.AccountName
	}
	for name, v := range a.cfg.Contacts {
		if v == id {
			return name
		}
	}
	return ""
}

// Sync verifies acct's chain from the server against what this device
// verified before. On the device's own account it also finishes pending
// enrollments and recoveries and, when the verified chain shows this device
// revoked or retired, destroys every key.
func (a *Agent) Sync(ctx context.Context, acct chain.AccountID) (*chain.State, error) {
	st, err := a.chainState(ctx, acct)
	if err != nil {
		return nil, err
	}
	if own, ok := a.cfg.account(); ok && own == acct && a.ks != nil {
		if err := a.checkSelf(ctx, st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// chainState verifies the server's view of acct against what this device
// verified before and stores the extension (client.SyncFrom), from the
// state cached for this process. A device that follows a transparency
// log (logFollowed) first syncs the log and accepts only links that are
// in it (syncLogged).
func (a *Agent) chainState(ctx context.Context, acct chain.AccountID) (*chain.State, error) {
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	follow, err := a.logFollowed(ctx, cl)
	if err != nil {
		return nil, err
	}
	if follow {
		return a.syncLogged(ctx, cl, acct)
	}
	st, err := cl.SyncFrom(ctx, acct, a.db, a.verified[acct], a.now(), a.verifyOpts()...)
	if err != nil {
		return nil, err
	}
	a.remember(acct, st)
	return st, nil
}

// remember caches st as the verified state of the links agent.db holds
// for acct.
func (a *Agent) remember(acct chain.AccountID, st *chain.State) {
	if a.verified == nil {
		a.verified = map[chain.AccountID]*chain.State{}
	}
	a.verified[acct] = st
}

// checkSelf acts on this device's status in its verified chain.
func (a *Agent) checkSelf(ctx context.Context, st *chain.State) error {
	d, ok := st.Device(a.deviceID())
	if !ok {
		return nil // not in the chain yet (pending)
	}
	switch d.Status {
	case chain.StatusActive:
		if a.cfg.Status != StatusActive {
			cause := lifecycle.DeviceEnrollment
			switch d.AddedBy {
			case chain.TypeGenesis:
				cause = lifecycle.AccountSetup
			case chain.TypeReplaceDevice:
				cause = lifecycle.Replacement
			case chain.TypeRecover:
				cause = lifecycle.Recovery
			}
			if err := a.unlock(ctx); err != nil {
				return err
			}
			return a.activate(st.Account(), cause)
		}
		return nil
	default:
		status := StatusRevoked
		why := fmt.Sprintf("revoked in the account's chain at seq %d", d.EndedSeq)
		if d.Status == chain.StatusRetired {
			status, why = StatusRetired, fmt.Sprintf("replaced by device %s at seq %d", d.ReplacedBy, d.EndedSeq)
		}
		if a.cfg.Status != status {
			if err := a.ks.RevokeDevice(ctx, why); err != nil {
				return fmt.Errorf("device: destroying keys after revocation: %w", err)
			}
			a.cfg.Status, a.cfg.Pending = status, nil
			if err := a.db.save(a.cfg); err != nil {
				return err
			}
		}
		return fmt.Errorf("%w: %s; every key on this device was destroyed", ErrRevoked, why)
	}
}

// own returns the device's account and its freshly verified state; the
// device must be active.
func (a *Agent) own(ctx context.Context) (chain.AccountID, *chain.State, error) {
	acct, ok := a.cfg.account()
	if !ok {
		return acct, nil, ErrNoAccount
	}
	st, err := a.Sync(ctx, acct)
	if err != nil {
		return acct, nil, err
	}
	if !st.IsActive(a.deviceID()) {
		return acct, st, fmt.Errorf("%w (status: %s)", ErrNotActive, a.statusWord())
	}
	return acct, st, nil
}

func (a *Agent) statusWord() string {
	if a.cfg.Status == "" {
		return "no account"
	}
	return a.cfg.Status
}

// checkServerRevoked turns a server's device_revoked answer into a verified
// conclusion: it syncs the chain (public), and only the chain decides.
func (a *Agent) checkServerRevoked(ctx context.Context, err error) error {
	if !errors.Is(err, client.ErrDeviceRevoked) {
		return err
	}
	acct, ok := a.cfg.account()
	if !ok {
		return err
	}
	if _, serr := a.Sync(ctx, acct); serr != nil {
		return serr
	}
	return fmt.Errorf("%w (but this device's verified chain still shows it active: the server may be wrong)", err)
}

// fingerprint of a KEM public key (envelope addressing).
func kemHash(pub []byte) [32]byte { return sha256.Sum256(pub) }
