package api

import (
	"errors"
	"time"
)

// AccountSummary is one account of GET /v1/admin/accounts.
type AccountSummary struct {
	AccountID string `json:"account_id"`
	Name      string `json:"name"`
	Head      Head   `json:"head"`
}

// AccountList is GET /v1/admin/accounts.
type AccountList struct {
	Accounts []AccountSummary `json:"accounts"`
}

// Validate checks every account id.
func (l AccountList) Validate() error {
	for _, a := range l.Accounts {
		if err := checkHex("account_id", a.AccountID, AccountIDSize); err != nil {
			return err
		}
	}
	return nil
}

// Reason is the body of POST /v1/admin/enrollments/{rid}/deny.
type Reason struct {
	Reason string `json:"reason,omitempty"`
}

// Validate checks the reason's length.
func (q Reason) Validate() error { return checkReason(q.Reason) }

// RevokeRequest is the body of POST /v1/admin/accounts/{id}/revoke.
type RevokeRequest struct {
	DeviceID string `json:"device_id"`
	Reason   string `json:"reason,omitempty"`
}

// Validate checks the device id and the reason's length.
func (q RevokeRequest) Validate() error {
	return first(checkHex("device_id", q.DeviceID, DeviceIDSize), checkReason(q.Reason))
}

// PolicyChange is the answer to POST /v1/admin/accounts/{id}/policy: the
// new head and the policy before and after.
type PolicyChange struct {
	Head     Head   `json:"head"`
	Previous Policy `json:"previous"`
	Policy   Policy `json:"policy"`
}

// Validate checks the head.
func (r PolicyChange) Validate() error { return r.Head.Validate() }

// ReviewRequest is the body of POST /v1/admin/recoveries/{rid}/review.
type ReviewRequest struct {
	Approve *bool  `json:"approve"`
	Reason  string `json:"reason,omitempty"`
}

// Validate checks that approve is given and the reason's length.
func (q ReviewRequest) Validate() error {
	if q.Approve == nil {
		return errors.New("approve (true or false) is required")
	}
	return checkReason(q.Reason)
}

// AuditEntry is one entry of the organisation's audit log.
type AuditEntry struct {
	ID        int64     `json:"id"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	AccountID string    `json:"account_id,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	Detail    string    `json:"detail"`
}

// AuditLog is GET /v1/admin/audit.
type AuditLog struct {
	Entries []AuditEntry `json:"entries"`
}

// Validate checks that the entries come in order.
func (l AuditLog) Validate() error {
	for i := 1; i < len(l.Entries); i++ {
		if l.Entries[i].ID <= l.Entries[i-1].ID {
			return errors.New("audit entries out of order")
		}
	}
	return nil
}
