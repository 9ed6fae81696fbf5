package command

import (
	"context"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/soft"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
)

// orgKeys holds the organisation admin keys in Command's own keystore
// (DataDir/keystore), never in the database. The keystore is opened for
// each operation (open, unlock, sign, close) so that the running server
// and `enigm-command org …` in another process can share it.
type orgKeys struct {
	cfg *Config
	mu  sync.Mutex // one keystore session at a time in this process
}

func newOrgKeys(cfg *Config) *orgKeys { return &orgKeys{cfg: cfg} }

func (k *orgKeys) home() string { return filepath.Join(k.cfg.DataDir, KeystoreDir) }

func (k *orgKeys) backendFor(name string) (backend.Backend, error) {
	if k.cfg.KeystoreBackend != nil {
		return k.cfg.KeystoreBackend(name)
	}
	if name != "soft" {
		return nil, fmt.Errorf("%w: backend %q", backend.ErrUnavailable, name)
	}
	return soft.New(soft.Options{})
}

// passphrase returns the keystore passphrase: Config, then the
// environment, then the generated file (created when create is set).
func (k *orgKeys) passphrase(create bool) ([]byte, error) {
	if k.cfg.KeystorePassphrase != nil {
		return append([]byte(nil), k.cfg.KeystorePassphrase...), nil
	}
	if p := k.cfg.Getenv(PassphraseEnv); p != "" {
		return []byte(p), nil
	}
	path := filepath.Join(k.cfg.DataDir, PassphraseFile)
	b, err := os.ReadFile(path)
	if err == nil {
		p := []byte(strings.TrimSpace(string(b)))
		if len(p) == 0 {
			return nil, fmt.Errorf("command: %s is empty", path)
		}
		return p, nil
	}
	if !errors.Is(err, os.ErrNotExist) || !create {
		return nil, fmt.Errorf("command: no keystore passphrase: set %s or keep %s: %w", PassphraseEnv, path, err)
	}
	p := []byte(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(randomBytes(20)))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("command: writing %s: %w", path, err)
	}
	if _, err := f.Write(append(p, '\n')); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	k.cfg.Logger.Warn("generated a keystore passphrase and stored it next to the keystore; it protects nothing against someone who can read the data directory: set "+PassphraseEnv+" instead",
		"file", path)
	return p, nil
}

func (k *orgKeys) open(ctx context.Context, create bool) (*keystore.Store, error) {
	opts := keystore.Options{Backend: k.backendFor, LockTimeout: k.cfg.KeystoreLockTimeout}
	home := k.home()
	if !keystore.Exists(home) {
		if !create {
			return nil, fmt.Errorf("command: no keystore in %s (create an organisation first)", home)
		}
		p, err := k.passphrase(true)
		if err != nil {
			return nil, err
		}
		defer clear(p)
		b, err := k.backendFor("soft")
		if err != nil {
			return nil, err
		}
		return keystore.Init(ctx, home, b, p, keystore.InitOptions{Options: opts})
	}
	st, err := keystore.Open(home, opts)
	if err != nil {
		return nil, err
	}
	p, err := k.passphrase(false)
	if err != nil {
		st.Close()
		return nil, err
	}
	defer clear(p)
	if err := st.Unlock(ctx, p); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// withSigner runs fn with the organisation key keyID. authMethod names
// the credential that authenticated the request ("admin_token", or
// "invite" when an invited account's genesis is counter-signed).
func (k *orgKeys) withSigner(ctx context.Context, keyID, authMethod string, fn func(chain.Signer) error) error {
	id, err := keystore.ParseKeyID(keyID)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := k.open(ctx, false)
	if err != nil {
		return err
	}
	defer st.Close()
	st.Authenticate(authMethod)
	st.SetAppAuthorized(true)
	ik, err := st.Identity(id)
	if err != nil {
		return err
	}
	signer, err := ik.ChainSigner(false)
	if err != nil {
		return err
	}
	return fn(signer)
}

// generate creates a new organisation key and returns its id and public key.
func (k *orgKeys) generate(ctx context.Context) (keystore.KeyID, *hybrid.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := k.open(ctx, true)
	if err != nil {
		return keystore.KeyID{}, nil, err
	}
	defer st.Close()
	info, err := st.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true})
	if err != nil {
		return keystore.KeyID{}, nil, err
	}
	ik, err := st.Identity(info.ID)
	if err != nil {
		return keystore.KeyID{}, nil, err
	}
	pub, err := ik.HybridPublic()
	return info.ID, pub, err
}

func (k *orgKeys) revoke(id keystore.KeyID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := keystore.Open(k.home(), keystore.Options{Backend: k.backendFor, LockTimeout: k.cfg.KeystoreLockTimeout})
	if err != nil {
		return
	}
	defer st.Close()
	st.RevokeKey(id)
}

// keyErr maps a keystore failure during an admin operation.
func (s *Server) keyErr(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, keystore.ErrInUse) {
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "the organisation keystore is busy (enigm-command org … is running); try again", cause: err}
	}
	return internal(fmt.Errorf("organisation keystore: %w", err))
}

// OrgSpec describes a new organisation.
type OrgSpec struct {
	Name   string
	Policy Policy
}

// OrgCreated is the result of CreateOrg. AdminToken is the admin
// credential; it is shown once and stored only hashed. It must be kept
// secret.
type OrgCreated struct {
	ID         string
	Name       string
	AdminKey   *hybrid.PublicKey
	AdminToken string
	Policy     Policy
}

func checkOrgName(s string) error {
	if len(s) == 0 || len(s) > 64 || !utf8.ValidString(s) {
		return errors.New("command: an organisation name is 1-64 bytes of UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return errors.New("command: an organisation name holds no control or format characters")
		}
	}
	return nil
}

// checkPolicy validates an organisation policy as the chain would.
func checkPolicy(p Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	return nil
}

// openStore opens the database of cfg for the organisation commands.
func openStore(ctx context.Context, cfg *Config) (store.Store, func(), error) {
	if cfg.Store != nil {
		return cfg.Store, func() {}, nil
	}
	st, err := store.Open(ctx, cfg.dsn())
	if err != nil {
		return nil, nil, err
	}
	return st, func() { st.Close() }, nil
}

// CreateOrg creates an organisation on the server's data: its admin key
// in Command's keystore, its admin token (returned once, stored hashed) and
// its policy. It works while a server runs on the same data.
func CreateOrg(ctx context.Context, config Config, spec OrgSpec) (*OrgCreated, error) {
	cfg, err := config.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := checkOrgName(spec.Name); err != nil {
		return nil, err
	}
	if err := checkPolicy(spec.Policy); err != nil {
		return nil, err
	}
	st, done, err := openStore(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := st.OrgByName(ctx, spec.Name); err == nil {
		return nil, fmt.Errorf("%w: an organisation named %q exists", store.ErrExists, spec.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	keys := newOrgKeys(&cfg)
	keyID, pub, err := keys.generate(ctx)
	if err != nil {
		return nil, fmt.Errorf("command: creating the organisation key: %w", err)
	}
	pj, _ := json.Marshal(spec.Policy)
	tok := newToken(adminTokenPrefix)
	o := store.Org{ID: hex.EncodeToString(randomBytes(16)), Name: spec.Name, AdminKey: pub.Bytes(), AdminKeyID: keyID.String(),
		AdminTokenHash: secretHash([]byte(tok)), Policy: string(pj), CreatedAt: cfg.Clock()}
	err = st.CreateOrg(ctx, o, store.AuditEntry{Time: o.CreatedAt, Actor: "cli", Action: "org.create", OrgID: o.ID,
		Detail: fmt.Sprintf("organisation %q created with admin key %s and policy %s", o.Name, pub, pj)})
	if err != nil {
		keys.revoke(keyID)
		return nil, err
	}
	return &OrgCreated{ID: o.ID, Name: o.Name, AdminKey: pub, AdminToken: tok, Policy: spec.Policy}, nil
}

// Invited is the result of CreateInvite. Code must be kept secret until
// it reaches the invited user; it is stored only hashed.
type Invited struct {
	Code        string
	OrgID       string
	AccountName string
	ExpiresAt   time.Time
}

// CreateInvite invites the account name into the organisation org (its id
// or name) for ttl (0: DefaultInviteTTL).
func CreateInvite(ctx context.Context, config Config, org, account string, ttl time.Duration) (*Invited, error) {
	cfg, err := config.withDefaults()
	if err != nil {
		return nil, err
	}
	if !ValidName(account) {
		return nil, errors.New("command: an account name is 1-64 of [a-z0-9._-]")
	}
	if ttl == 0 {
		ttl = DefaultInviteTTL
	}
	if ttl < 0 {
		return nil, errors.New("command: the invite lifetime must be positive")
	}
	st, done, err := openStore(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	o, err := st.Org(ctx, org)
	if errors.Is(err, store.ErrNotFound) {
		o, err = st.OrgByName(ctx, org)
	}
	if err != nil {
		return nil, fmt.Errorf("organisation %q: %w", org, err)
	}
	code := inviteCode()
	now := cfg.Clock()
	inv := store.Invite{CodeHash: secretHash([]byte(code)), OrgID: o.ID, AccountName: account, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err = st.CreateInvite(ctx, inv, store.AuditEntry{Time: now, Actor: "cli", Action: "invite.create", OrgID: o.ID,
		Detail: fmt.Sprintf("account name %q invited until %s", account, rfc3339(inv.ExpiresAt))})
	if err != nil {
		return nil, err
	}
	return &Invited{Code: code, OrgID: o.ID, AccountName: account, ExpiresAt: inv.ExpiresAt}, nil
}

// inviteCode is 160 random bits in lowercase base32, in groups of five.
func inviteCode() string {
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(randomBytes(20)))
	var b strings.Builder
	for i := 0; i < len(s); i += 8 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+8, len(s))])
	}
	return b.String()
}
