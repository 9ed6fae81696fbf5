package load

import (
	"context"
	"crypto/hpke"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/hybrid"
)

// Devices and accounts as the load generator builds them: fresh keys for
// every device (software protection), links built and signed with the
// chain package as a device agent does. Nothing here is verified against
// the server's answers beyond their status: the tool measures the server,
// the device agent's verification is tested elsewhere.

// device is a generated device: its keys and public record.
type device struct {
	key *hybrid.PrivateKey
	rec chain.Device
}

func newDevice(name string) (*device, error) {
	seed := make([]byte, hybrid.SeedSize)
	rand.Read(seed)
	k, err := hybrid.NewPrivateKey(seed)
	if err != nil {
		return nil, err
	}
	kem, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		return nil, err
	}
	d := &device{key: k, rec: chain.Device{Name: name, Identity: k.Public(), KEM: kem.PublicKey().Bytes(), Level: chain.LevelSoftware}}
	rand.Read(d.rec.ID[:])
	return d, nil
}

func (d *device) id() string { return hex.EncodeToString(d.rec.ID[:]) }

// account is an account the generator created, with the state its links
// lead to (as the devices computed it).
type account struct {
	name  string
	id    string
	st    *chain.State
	first *device
}

// newAccount builds and registers an unmanaged account whose first device
// is first; recovery is the recovery key (one per run: the tool never
// recovers).
func newAccount(ctx context.Context, c *endpoint, name string, first *device, recovery *hybrid.PrivateKey) (*account, error) {
	d, err := chain.NewGenesis(time.Now(), &chain.Genesis{Device: first.rec, Recovery: recovery.Public(), Policy: chain.DefaultPolicy()})
	if err != nil {
		return nil, err
	}
	if err := d.Sign(chain.RoleSubject, first.key); err != nil {
		return nil, err
	}
	if err := d.Sign(chain.RoleNewRecovery, recovery); err != nil {
		return nil, err
	}
	l, err := d.Link()
	if err != nil {
		return nil, err
	}
	st, err := chain.Apply(nil, l, time.Now())
	if err != nil {
		return nil, err
	}
	var out api.AccountCreated
	if err := c.call(ctx, "POST", "/v1/accounts", "", &api.CreateAccount{Name: name, Genesis: l.Bytes()}, &out); err != nil {
		return nil, fmt.Errorf("creating account %s: %w", name, err)
	}
	if out.AccountID != st.Account().String() {
		return nil, fmt.Errorf("creating account %s: the server named it %s", name, out.AccountID)
	}
	return &account{name: name, id: out.AccountID, st: st, first: first}, nil
}

// login obtains a device token by the challenge protocol.
// signedIn makes a device named devName, the account name with it as the
// first device, and the device's token: how every scenario starts an
// account.
func signedIn(ctx context.Context, c *endpoint, name, devName string, recovery *hybrid.PrivateKey) (*account, *device, string, error) {
	d, err := newDevice(devName)
	if err != nil {
		return nil, nil, "", err
	}
	a, err := newAccount(ctx, c, name, d, recovery)
	if err != nil {
		return nil, nil, "", err
	}
	tok, err := login(ctx, c, a, d)
	return a, d, tok, err
}

func login(ctx context.Context, c *endpoint, a *account, d *device) (string, error) {
	var ch api.Challenge
	if err := c.call(ctx, "POST", "/v1/auth/challenge", "", &api.ChallengeRequest{AccountID: a.id, DeviceID: d.id()}, &ch); err != nil {
		return "", err
	}
	if err := ch.Validate(); err != nil {
		return "", err
	}
	sig, err := d.key.Sign(authContext, client.TokenMessage(a.st.Account(), d.rec.ID, ch.Challenge))
	if err != nil {
		return "", err
	}
	var tok api.Token
	req := &api.TokenRequest{AccountID: a.id, DeviceID: d.id(), Challenge: ch.Challenge, Signature: sig.Bytes()}
	if err := c.call(ctx, "POST", "/v1/auth/token", "", req, &tok); err != nil {
		return "", err
	}
	return tok.Token, nil
}

// authContext is the signing context of the login challenge (keystore
// purpose auth/token).
var authContext = func() string {
	c, err := hybrid.Context("auth/token")
	if err != nil {
		panic(err)
	}
	return c
}()

// enrollment is one add_device enrollment made ahead: the three request
// bodies of the timed phase, with every signature already made.
type enrollment struct {
	acct    *account
	token   string // the approving device's
	request []byte // POST /v1/accounts/{id}/enrollments (CBOR, as the bodies below)
	approve []byte // POST /v1/enrollments/{rid}/approve
	link    []byte // POST /v1/enrollments/{rid}/complete
	st      *chain.State

	// The verifications the server makes of this enrollment's signatures,
	// to time them on the real thing: the approval (at submission, and
	// again in the link at completion) and the new device's proof of
	// possession (at completion).
	verifyApproval func() error
	verifySubject  func() error
}

// prepareAdd builds the enrollment of dev into a, approved by approver,
// at a's current head: the request body, the approval signature and the
// completed link (with the new device's proof of possession).
func prepareAdd(a *account, dev, approver *device) (*enrollment, error) {
	var nonce [chain.NonceSize]byte
	rand.Read(nonce[:])
	code := hex.EncodeToString(nonce[:4])
	body := &chain.AddDevice{Device: dev.rec, Nonce: nonce, PairingHash: chain.PairingHash(nonce, code)}
	raw, err := chain.EncodeBody(body)
	if err != nil {
		return nil, err
	}
	d, err := chain.NewDraft(a.st, time.Now(), body)
	if err != nil {
		return nil, err
	}
	stmt, _ := d.Approval()
	sg, err := chain.SignApproval(stmt, chain.TypeAddDevice, chain.RoleDevice, approver.rec.ID, approver.key)
	if err != nil {
		return nil, err
	}
	d.AddSignature(sg)
	if err := d.Sign(chain.RoleSubject, dev.key); err != nil {
		return nil, err
	}
	l, err := d.Link()
	if err != nil {
		return nil, err
	}
	st, err := chain.Apply(a.st, l, time.Now())
	if err != nil {
		return nil, fmt.Errorf("the prepared link does not verify: %w", err)
	}
	en := &enrollment{acct: a, st: st}
	apk := approver.key.Public()
	en.verifyApproval = func() error { return chain.VerifyApproval(stmt, chain.TypeAddDevice, chain.RoleDevice, apk, sg.Sig) }
	for _, s := range l.Signatures() {
		if s.Role != chain.RoleSubject {
			continue
		}
		hs, err := hybrid.ParseSignature(s.Sig)
		if err != nil {
			return nil, err
		}
		payload, ctx, dpk := l.Payload(), chain.SigningContext(chain.TypeAddDevice, chain.RoleSubject), dev.key.Public()
		en.verifySubject = func() error { return hybrid.Verify(dpk, ctx, payload, hs) }
	}
	en.request = encode(&api.EnrollRequest{Type: api.TypeAddDevice, Body: raw})
	en.approve = encode(&api.ApproveRequest{Head: api.HeadOf(a.st.Head()), Signature: sg.Sig})
	en.link = encode(&api.LinkRequest{Link: l.Bytes()})
	return en, nil
}

// enroll runs a prepared enrollment outside a timed phase and moves the
// account's state on.
func enroll(ctx context.Context, c *endpoint, en *enrollment) error {
	rid, err := runEnrollment(ctx, c, en, nil)
	if err != nil {
		return fmt.Errorf("enrollment %s: %w", rid, err)
	}
	en.acct.st = en.st
	return nil
}

// parallel runs fn(i) for i in [0, n) on as many goroutines as there are
// CPUs, stopping at the first error. done counts finished calls.
func parallel(ctx context.Context, n int, done *atomic.Int64, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next atomic.Int64
		once sync.Once
		ferr error
		wg   sync.WaitGroup
	)
	for w := 0; w < runtime.GOMAXPROCS(0)*2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { ferr = err; cancel() })
					return
				}
				if done != nil {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ferr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return ferr
}
