package api

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/enigm/enigm/chain"
)

// Sizes of ids in bytes (twice as many lowercase hex digits).
const (
	AccountIDSize  = chain.HashSize
	DeviceIDSize   = chain.DeviceIDSize
	RequestIDSize  = 16
	RecoveryIDSize = chain.HashSize
)

// MaxReason bounds the reason an admin gives, in bytes.
const MaxReason = 500

// checkHex checks that s is the lowercase hex form of n bytes.
func checkHex(field, s string, n int) error {
	if s == "" {
		return fmt.Errorf("%s is missing", field)
	}
	if !IsHex(s, n) {
		return fmt.Errorf("%s must be %d lowercase hex digits", field, 2*n)
	}
	return nil
}

// IsHex reports whether s is the lowercase hex form of n bytes.
func IsHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// first returns the first error that is not nil.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// each validates every element of xs.
func each[T interface{ Validate() error }](xs []T) error {
	for _, x := range xs {
		if err := x.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// checkBytes checks a required binary field of at most max bytes.
func checkBytes(field string, b []byte, max int) error {
	if len(b) == 0 {
		return fmt.Errorf("%s is missing", field)
	}
	if len(b) > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrTooLarge, field, len(b), max)
	}
	return nil
}

// checkLink checks a required link field: a link beyond the chain's size
// limit is the chain's too_large.
func checkLink(field string, b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%s is missing", field)
	}
	if len(b) > chain.MaxLinkSize {
		return fmt.Errorf("%w: %s is %d bytes, the chain's link size limit is %d", chain.ErrTooLarge, field, len(b), chain.MaxLinkSize)
	}
	return nil
}

func checkReason(s string) error {
	if len(s) > MaxReason {
		return fmt.Errorf("reason is at most %d bytes", MaxReason)
	}
	return nil
}

// ParseAccountID parses a 64-digit lowercase hex account id.
func ParseAccountID(s string) (chain.AccountID, error) {
	var a chain.AccountID
	if !IsHex(s, len(a)) {
		return a, fmt.Errorf("%q is not a 64-digit lowercase hex account id", s)
	}
	hex.Decode(a[:], []byte(s))
	return a, nil
}

// ParseDeviceID parses a 32-digit lowercase hex device id.
func ParseDeviceID(s string) (chain.DeviceID, error) {
	var d chain.DeviceID
	if !IsHex(s, len(d)) {
		return d, fmt.Errorf("%q is not a 32-digit lowercase hex device id", s)
	}
	hex.Decode(d[:], []byte(s))
	return d, nil
}

// ValidName reports whether s is a valid account name: 1–64 of [a-z0-9._-].
func ValidName(s string) bool { return lowerAlnum(s, 1, 64, "._-") }

// ValidInviteCode reports whether s has the shape of an invite code:
// 16–128 of [a-z0-9-].
func ValidInviteCode(s string) bool { return lowerAlnum(s, 16, 128, "-") }

// lowerAlnum reports whether s has min to max bytes, each of a-z, 0-9 or
// extra.
func lowerAlnum(s string, min, max int, extra string) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// ValidCallID reports whether s is a call id: 1–64 of [A-Za-z0-9_-].
func ValidCallID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Seconds returns t as the API carries times: UTC, whole seconds (the
// zero time stays zero).
func Seconds(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Second)
}
