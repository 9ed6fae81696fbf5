// Package store is Enigm Command's storage: accounts and their names, chain
// links (appended by compare-and-append), enrollment requests, recoveries,
// organisations, invites, relay envelopes, device tokens and challenges,
// and the audit log.
//
// # Engines
//
// One SQL implementation runs on two engines: SQLite through the pure-Go
// modernc.org/sqlite driver (WAL mode, a busy timeout, immediate write
// transactions; the embedded default) and PostgreSQL through
// github.com/jackc/pgx/v5's database/sql driver. [Open] picks the engine
// from the data source name. The conformance suite in storetest runs against
// both.
//
// # What the store guarantees
//
//   - Every method that writes more than one row does so in one
//     transaction: nothing is ever stored half-way.
//   - [Store.Append] is compare-and-append on (account, sequence, previous
//     hash): of concurrent appends at the same head exactly one wins, the
//     others get ErrConflict, and no link is lost or interleaved.
//   - Writes carry their audit entries, stored in the same transaction.
//   - Errors wrap the sentinels below; a database that cannot be reached
//     returns ErrUnavailable.
//
// The store holds only public material and hashes of bearer secrets
// (tokens, challenges, invite codes, admin tokens). It does not verify
// chains: the command package verifies every link before it calls Append
// and re-verifies what it loads.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors. Callers compare with errors.Is.
var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a row with this key exists already.
	ErrExists = errors.New("store: already exists")
	// ErrNameTaken: the account name is registered already.
	ErrNameTaken = errors.New("store: account name taken")
	// ErrConflict: compare-and-append lost; the chain head moved.
	ErrConflict = errors.New("store: chain head moved")
	// ErrChanged: a row changed since it was read (its version, or an
	// invite that was used meanwhile); read it again.
	ErrChanged = errors.New("store: record changed concurrently")
	// ErrUnavailable: the database cannot be reached or did not answer;
	// nothing was written.
	ErrUnavailable = errors.New("store: database unavailable")
	// ErrSchemaTooNew: the database was migrated by a newer binary.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")
)

// Head is a chain head: the sequence number and hex hash of the last link.
type Head struct {
	Seq  uint64
	Hash string
}

// Account is a registered account.
type Account struct {
	ID        string // hex account id (hash of the genesis link)
	Name      string
	OrgID     string // "" for unmanaged accounts
	Head      Head
	CreatedAt time.Time
}

// Link is a stored chain link.
type Link struct {
	Seq       uint64
	Hash      string // hex link hash
	Prev      string // hex previous hash ("" for genesis)
	Type      string // chain link type name
	Data      []byte // canonical link bytes
	CreatedAt time.Time
}

// Enrollment states.
const (
	EnrollPending        = "pending"
	EnrollDeviceApproved = "device_approved"
	EnrollApproved       = "approved"
	EnrollCompleted      = "completed"
	EnrollDenied         = "denied"
	EnrollExpired        = "expired"
)

// Approval is an enrollment approval signature.
type Approval struct {
	Role      string `json:"role"`             // "device" or "org"
	Signer    string `json:"signer,omitempty"` // device id for role device
	Signature []byte `json:"signature"`
}

// Enrollment is an enrollment request (add_device or replace_device).
type Enrollment struct {
	ID         string
	AccountID  string
	Type       string
	State      string
	Body       []byte
	DeviceID   string
	DeviceName string
	Protection string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Head       *Head // the head the approvals name; nil while pending
	Approvals  []Approval
	Reason     string
	// Version increases with every update; UpdateEnrollment succeeds only
	// from the version that was read.
	Version int64
}

// Recovery states as stored. "ready" is not stored: it is a waiting
// recovery whose not-before time has passed.
const (
	RecoveryWaiting       = "waiting"
	RecoveryPendingReview = "pending_review"
	RecoveryVetoed        = "vetoed"
	RecoveryCompleted     = "completed"
	RecoveryDenied        = "denied"
)

// Recovery is a recovery started by a recovery_request link.
type Recovery struct {
	ID          string // hex hash of the recovery_request link
	AccountID   string
	DeviceID    string
	State       string
	RequestedAt time.Time
	NotBefore   time.Time
	Link        []byte // the recover link awaiting admin review, if any
	Reason      string
	Version     int64
}

// Org is an organisation.
type Org struct {
	ID             string
	Name           string
	AdminKey       []byte // hybrid public key
	AdminKeyID     string // id of the private key in Command's keystore
	AdminTokenHash []byte // SHA-256 of the admin token
	Policy         string // JSON policy (opaque to the store)
	CreatedAt      time.Time
}

// Invite invites an account name into an organisation.
type Invite struct {
	CodeHash    []byte // SHA-256 of the invite code
	OrgID       string
	AccountName string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      time.Time // zero while unused
	AccountID   string    // the account that used it
}

// Envelope is a relayed, opaque message or call envelope for one device.
type Envelope struct {
	ID          int64
	AccountID   string // recipient account
	DeviceID    string // recipient device
	FromAccount string
	FromDevice  string
	Kind        string
	CallID      string
	SentAt      time.Time
	Ciphertext  []byte
}

// Secret is a stored bearer secret of a device: a token or a challenge,
// by its hash.
type Secret struct {
	Hash      []byte
	AccountID string
	DeviceID  string
	ExpiresAt time.Time
}

// AuditEntry is one audit log entry.
type AuditEntry struct {
	ID        int64
	Time      time.Time
	Actor     string // "device:<account>/<device>", "admin:<org>", "cli", "anonymous", "system"
	Action    string // e.g. "enrollment.approve"
	OrgID     string
	AccountID string
	DeviceID  string
	Detail    string
}

// NewAccount is what CreateAccount stores: the account row and its genesis
// link, and for a managed account the invite it uses.
type NewAccount struct {
	Account    Account
	Genesis    Link
	InviteHash []byte // nil for unmanaged accounts
}

// Append is one compare-and-append with the changes that must happen in
// the same transaction.
type Append struct {
	AccountID string
	Link      Link // Link.Seq must be head.Seq+1 and Link.Prev head.Hash
	// DropEnvelopes: devices whose queued envelopes are deleted (revocation).
	DropEnvelopes []string
	// DropTokens: devices whose tokens are deleted (revocation).
	DropTokens []string
	// Enrollment, when set, is updated from its Version (ErrChanged if it
	// moved).
	Enrollment *Enrollment
	// NewRecovery, when set, is inserted.
	NewRecovery *Recovery
	// Recovery, when set, is updated from its Version.
	Recovery *Recovery
	Audit    []AuditEntry
}

// EnrollmentFilter selects enrollments: by account or by organisation, and
// by state (all states when States is empty).
type EnrollmentFilter struct {
	AccountID string
	OrgID     string
	States    []string
}

// RecoveryFilter selects recoveries like EnrollmentFilter.
type RecoveryFilter struct {
	AccountID string
	OrgID     string
	States    []string
}

// AuditFilter selects audit entries with ID > After (of one organisation
// when OrgID is set), oldest first, at most Limit.
type AuditFilter struct {
	OrgID string
	After int64
	Limit int
}

// Store is Command's storage. Implementations are safe for concurrent use.
type Store interface {
	// Engine returns "sqlite" or "postgres".
	Engine() string
	// SchemaVersion returns the schema version of the database.
	SchemaVersion() int
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error

	CreateOrg(ctx context.Context, o Org, audit ...AuditEntry) error
	Org(ctx context.Context, id string) (Org, error)
	OrgByName(ctx context.Context, name string) (Org, error)
	OrgByTokenHash(ctx context.Context, hash []byte) (Org, error)

	CreateInvite(ctx context.Context, inv Invite, audit ...AuditEntry) error
	Invite(ctx context.Context, codeHash []byte) (Invite, error)

	// CreateAccount stores a new account with its genesis link and marks
	// its invite used, in one transaction. ErrNameTaken, ErrExists (the
	// account id), ErrChanged (the invite was used meanwhile).
	CreateAccount(ctx context.Context, a NewAccount, audit ...AuditEntry) error
	Account(ctx context.Context, id string) (Account, error)
	AccountByName(ctx context.Context, name string) (Account, error)
	AccountsByOrg(ctx context.Context, orgID string) ([]Account, error)
	// Links returns the account's links with seq > after (all when after
	// is negative), in order, at most limit (no limit when limit <= 0).
	Links(ctx context.Context, accountID string, after int64, limit int) ([]Link, error)
	// Append appends a link if the account's head is still at
	// (Link.Seq-1, Link.Prev), and makes the other changes of a in the
	// same transaction. ErrConflict when the head moved, ErrChanged when
	// a guarded row did, ErrNotFound for an unknown account.
	Append(ctx context.Context, a Append) error

	CreateEnrollment(ctx context.Context, e Enrollment, audit ...AuditEntry) error
	Enrollment(ctx context.Context, id string) (Enrollment, error)
	Enrollments(ctx context.Context, f EnrollmentFilter) ([]Enrollment, error)
	// UpdateEnrollment stores e if the stored version is still e.Version
	// (ErrChanged otherwise); the stored version becomes e.Version+1.
	UpdateEnrollment(ctx context.Context, e Enrollment, audit ...AuditEntry) error

	Recovery(ctx context.Context, id string) (Recovery, error)
	Recoveries(ctx context.Context, f RecoveryFilter) ([]Recovery, error)
	// UpdateRecovery stores r if the stored version is still r.Version.
	UpdateRecovery(ctx context.Context, r Recovery, audit ...AuditEntry) error

	// PutEnvelopes stores envelopes if every account in heads is still at
	// the given head sequence number (ErrConflict otherwise), so that an
	// envelope accepted for a device cannot slip in after the revocation
	// that deleted the device's queue.
	PutEnvelopes(ctx context.Context, heads map[string]uint64, envs []Envelope) error
	// Envelopes returns a device's queued envelopes, oldest first.
	Envelopes(ctx context.Context, accountID, deviceID string, limit int) ([]Envelope, error)
	// AckEnvelopes deletes the device's own envelopes among ids and
	// returns how many it deleted.
	AckEnvelopes(ctx context.Context, accountID, deviceID string, ids []int64) (int, error)

	PutChallenge(ctx context.Context, c Secret) error
	// TakeChallenge deletes the challenge with this hash and returns it:
	// a challenge is taken at most once. ErrNotFound when missing.
	TakeChallenge(ctx context.Context, hash []byte) (Secret, error)
	PutToken(ctx context.Context, t Secret) error
	Token(ctx context.Context, hash []byte) (Secret, error)
	// TokenAccount returns the token with this hash and its account, read
	// together (an authenticated request needs both). ErrNotFound when
	// either is missing.
	TokenAccount(ctx context.Context, hash []byte) (Secret, Account, error)

	// Expire marks enrollments past their expiry expired (one audit entry
	// each) and deletes expired tokens and challenges. It returns the ids
	// of the enrollments it expired.
	Expire(ctx context.Context, now time.Time) ([]string, error)

	// Setting returns the value of a deployment-wide setting, storing
	// init first when the key has none (the first instance to ask wins).
	Setting(ctx context.Context, key, init string) (string, error)

	AddAudit(ctx context.Context, audit ...AuditEntry) error
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}
