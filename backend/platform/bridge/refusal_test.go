package bridge

import (
	"errors"
	"fmt"
	"testing"
)

func TestRefusalCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{Refuse(CodeDeviceLocked, ""), CodeDeviceLocked},
		{fmt.Errorf("wrapped: %w", Refuse(CodeAuthRequired, "biometric prompt cancelled")), CodeAuthRequired},
		{errors.New("enigm-bridge/key_invalidated"), CodeKeyInvalidated},
		{errors.New("enigm-bridge/key_not_found: no alias x"), CodeKeyNotFound},
		{errors.New(`Error Domain=go Code=1 "enigm-bridge/bad_data: tag"`), CodeBadData},
		{errors.New("android.security.KeyStoreException: enigm-bridge/unsupported"), CodeUnsupported},
		{errors.New("enigm-bridge/unavailable: busy"), CodeUnavailable},
		{errors.New("enigm-bridge/unavailablex"), ""},
		{errors.New("enigm-bridge/"), ""},
		{errors.New("device_locked"), ""},
		{errors.New("enigm-bridge/Device_Locked"), ""},
		{nil, ""},
	} {
		if got := RefusalCode(tc.err); got != tc.want {
			t.Errorf("RefusalCode(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if got := Refuse(CodeBadData, "x").Error(); got != "enigm-bridge/bad_data: x" {
		t.Fatalf("message %q", got)
	}
	if got := Refuse(CodeBadData, "").Error(); got != "enigm-bridge/bad_data" {
		t.Fatalf("message %q", got)
	}
}
