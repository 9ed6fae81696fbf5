package api

import (
	"errors"
	"time"

	"github.com/enigm/enigm/hybrid"
)

// ChallengeSize is the size of an auth challenge in bytes.
const ChallengeSize = 32

// ChallengeRequest is the body of POST /v1/auth/challenge.
type ChallengeRequest struct {
	AccountID string `json:"account_id"`
	DeviceID  string `json:"device_id"`
}

// Validate checks the ids.
func (q ChallengeRequest) Validate() error {
	return first(checkHex("account_id", q.AccountID, AccountIDSize), checkHex("device_id", q.DeviceID, DeviceIDSize))
}

// Challenge is the answer to POST /v1/auth/challenge.
type Challenge struct {
	Challenge []byte    `json:"challenge"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Validate checks the challenge's size.
func (c Challenge) Validate() error {
	if len(c.Challenge) != ChallengeSize {
		return errors.New("malformed challenge: not 32 bytes")
	}
	return nil
}

// TokenRequest is the body of POST /v1/auth/token: the challenge and the
// device identity key's signature over the token message.
type TokenRequest struct {
	AccountID string `json:"account_id"`
	DeviceID  string `json:"device_id"`
	Challenge []byte `json:"challenge"`
	Signature []byte `json:"signature"`
}

// Validate checks the ids and the sizes of the challenge and signature.
func (q TokenRequest) Validate() error {
	return first(checkHex("account_id", q.AccountID, AccountIDSize), checkHex("device_id", q.DeviceID, DeviceIDSize),
		checkBytes("challenge", q.Challenge, ChallengeSize), checkBytes("signature", q.Signature, hybrid.SignatureSize))
}

// Token is the answer to POST /v1/auth/token.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Validate checks that there is a token.
func (t Token) Validate() error {
	if t.Token == "" {
		return errors.New("token is missing")
	}
	return nil
}
