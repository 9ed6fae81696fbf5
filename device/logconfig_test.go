package device_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/translog/translogtest"
)

// TestParseLogConfig: a device's log configuration is checked before it
// is stored: the pin's keys, the policy, and that the policy's log lines
// name one log and agree with the pin.
func TestParseLogConfig(t *testing.T) {
	s := translogtest.NewSigner(t, "log.example/a")
	other := translogtest.NewSigner(t, "log.example/b")
	keys, okeys := s.VerifierKeys(), other.VerifierKeys()
	w := translogtest.NewCosigner(t, "w.example")
	pin := &client.LogPin{Origin: "log.example/a", PublicKeys: keys}
	logLines := "log " + keys[0] + "\nlog " + keys[1] + "\n"
	for _, tc := range []struct {
		desc    string
		c       device.LogConfig
		wantErr string
		wantPin bool
	}{
		{"nothing", device.LogConfig{}, "", false},
		{"a pin", device.LogConfig{Pin: pin}, "", true},
		{"a pin in the other key order", device.LogConfig{Pin: &client.LogPin{Origin: pin.Origin, PublicKeys: []string{keys[1], keys[0]}}, Policy: logLines + "quorum none\n"}, "", true},
		{"the policy pins", device.LogConfig{Policy: logLines + "witness W " + w.Key + "\nquorum W\n"}, "", true},
		{"pin and policy differ", device.LogConfig{Pin: &client.LogPin{Origin: "log.example/b", PublicKeys: okeys}, Policy: logLines + "quorum none\n"}, "differ from the log keys given", false},
		{"two logs", device.LogConfig{Policy: logLines + "log " + okeys[0] + "\nquorum none\n"}, "this device follows one log", false},
		{"a pin without keys", device.LogConfig{Pin: &client.LogPin{Origin: "log.example/a"}}, "needs the log's origin and at least one key", false},
		{"a pin of another origin", device.LogConfig{Pin: &client.LogPin{Origin: "log.example/c", PublicKeys: keys}}, `for the log "log.example/c"`, false},
		{"a bad policy", device.LogConfig{Policy: "quorum W\n"}, `quorum "W" is not a witness`, false},
		{"a negative age", device.LogConfig{MaxAge: -1}, "negative", false},
	} {
		p, pol, err := device.ParseLogConfig(tc.c)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want %q", tc.desc, err, tc.wantErr)
			}
			if tc.desc == "pin and policy differ" && !errors.Is(err, client.ErrLogKeys) {
				t.Errorf("%s: %v is not ErrLogKeys", tc.desc, err)
			}
			continue
		}
		if err != nil || (p != nil) != tc.wantPin || (tc.c.Policy != "") != (pol != nil) {
			t.Errorf("%s: pin %v policy %v err %v", tc.desc, p, pol, err)
		}
	}
}
