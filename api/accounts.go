package api

import (
	"errors"
	"fmt"
)

// Info is GET /v1/info.
type Info struct {
	Version                 int    `json:"version"`
	ServerID                string `json:"server_id"`
	MinRecoveryDelaySeconds int64  `json:"min_recovery_delay_seconds"`
	EnrollmentTTLSeconds    int64  `json:"enrollment_ttl_seconds"`
	TokenTTLSeconds         int64  `json:"token_ttl_seconds"`
	// Log is present when the server publishes its transparency log
	// (under /log/).
	Log *LogInfo `json:"log,omitempty"`
}

// LogInfo names the transparency log: its checkpoint origin and the
// signed-note verifier keys ("name+hash+base64") its checkpoints carry.
type LogInfo struct {
	Origin     string   `json:"origin"`
	PublicKeys []string `json:"public_keys"`
}

// Validate checks the version this package speaks.
func (i Info) Validate() error {
	if i.Version != 1 {
		return fmt.Errorf("API version %d, this build speaks 1", i.Version)
	}
	if i.Log != nil && (i.Log.Origin == "" || len(i.Log.PublicKeys) == 0) {
		return fmt.Errorf("log: an origin and at least one public key are required")
	}
	return nil
}

// Health is GET /healthz.
type Health struct {
	Status        string `json:"status"`
	SchemaVersion int    `json:"schema_version"`
}

// Validate checks the status.
func (h Health) Validate() error {
	if h.Status != "ok" && h.Status != "unavailable" {
		return fmt.Errorf("unknown health status %q", h.Status)
	}
	return nil
}

// Name is GET /v1/names/{name}.
type Name struct {
	AccountID string `json:"account_id"`
}

// Validate checks the account id.
func (n Name) Validate() error { return checkHex("account_id", n.AccountID, AccountIDSize) }

// Invite is GET /v1/invites/{code}: what a managed genesis must carry.
type Invite struct {
	OrgID       string `json:"org_id"`
	OrgName     string `json:"org_name"`
	AccountName string `json:"account_name"`
	AdminKey    []byte `json:"admin_key"` // the organisation's hybrid public key
	Policy      Policy `json:"policy"`
}

// Validate checks the fields a genesis is built from.
func (i Invite) Validate() error {
	if i.OrgID == "" {
		return errors.New("org_id is missing")
	}
	if len(i.AdminKey) == 0 {
		return errors.New("admin_key is missing")
	}
	if !ValidName(i.AccountName) {
		return fmt.Errorf("account_name %q is not an account name", i.AccountName)
	}
	return i.Policy.Validate()
}

// CreateAccount is the body of POST /v1/accounts. CBOR: {1: name, 2:
// genesis link, ? 3: invite}.
type CreateAccount struct {
	Name    string `json:"name" cbor:"1,keyasint,omitempty"`
	Genesis []byte `json:"genesis" cbor:"2,keyasint,omitempty"`
	Invite  string `json:"invite,omitempty" cbor:"3,keyasint,omitempty"`
}

func (CreateAccount) cborBody() {}

// Validate checks the name, the genesis link's presence and size, and the
// invite code's shape.
func (q CreateAccount) Validate() error {
	if !ValidName(q.Name) {
		return errors.New("name must be 1-64 of [a-z0-9._-]")
	}
	if err := checkLink("genesis", q.Genesis); err != nil {
		return err
	}
	if q.Invite != "" && !ValidInviteCode(q.Invite) {
		return errors.New("malformed invite code")
	}
	return nil
}

// AccountCreated is the answer to POST /v1/accounts. CBOR: {1: account id,
// 2: Head}.
type AccountCreated struct {
	AccountID string `json:"account_id" cbor:"1,keyasint,omitempty"`
	Head      Head   `json:"head" cbor:"2,keyasint"`
}

// Validate checks the account id and head.
func (r AccountCreated) Validate() error {
	return first(checkHex("account_id", r.AccountID, AccountIDSize), r.Head.Validate())
}
