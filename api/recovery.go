package api

import (
	"fmt"
	"time"
)

// Recovery states.
const (
	RecoveryWaiting       = "waiting"
	RecoveryReady         = "ready"
	RecoveryPendingReview = "pending_review"
	RecoveryVetoed        = "vetoed"
	RecoveryCompleted     = "completed"
	RecoveryDenied        = "denied"
)

// Recovery is a recovery request as the server reports it. CBOR: the
// fields in order from key 1 (recovery_id) to 7 (reason), times as Unix
// seconds.
type Recovery struct {
	RecoveryID  string    `json:"recovery_id" cbor:"1,keyasint,omitempty"` // hex hash of the recovery_request link
	AccountID   string    `json:"account_id" cbor:"2,keyasint,omitempty"`
	DeviceID    string    `json:"device_id" cbor:"3,keyasint,omitempty"`
	State       string    `json:"state" cbor:"4,keyasint,omitempty"`
	RequestedAt time.Time `json:"requested_at" cbor:"5,keyasint,omitzero"`
	NotBefore   time.Time `json:"not_before" cbor:"6,keyasint,omitzero"`
	Reason      string    `json:"reason,omitempty" cbor:"7,keyasint,omitempty"`
}

// Validate checks the ids and the state.
func (r Recovery) Validate() error {
	if err := first(checkHex("recovery_id", r.RecoveryID, RecoveryIDSize), checkHex("account_id", r.AccountID, AccountIDSize),
		checkHex("device_id", r.DeviceID, DeviceIDSize)); err != nil {
		return err
	}
	switch r.State {
	case RecoveryWaiting, RecoveryReady, RecoveryPendingReview, RecoveryVetoed, RecoveryCompleted, RecoveryDenied:
		return nil
	}
	return fmt.Errorf("unknown recovery state %q", r.State)
}

// RecoveryList is GET /v1/admin/recoveries.
type RecoveryList struct {
	Recoveries []Recovery `json:"recoveries"`
}

// Validate checks every recovery.
func (l RecoveryList) Validate() error { return each(l.Recoveries) }
