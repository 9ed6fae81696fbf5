package enigmcli

import (
	"strings"
	"testing"
)

// TestSecurityHelp: `enigm security` and `enigm help security` state each
// of the model's seven security limitations.
func TestSecurityHelp(t *testing.T) {
	tr := newTranscript(t)
	limits := []string{
		"Hardware protection only where there is hardware",
		"Large keys live outside the hardware",
		"A compromised device can expose content after it decrypted it",
		"Revocation stops future trust, not past reading",
		"Recovery restores the account, never old messages",
		"Administrators manage devices, not keys",
		"OS security posture is part of trust",
	}
	for _, args := range [][]string{{"security"}, {"help", "security"}} {
		out := tr.must("", args...).stdout
		for _, l := range limits {
			if !strings.Contains(out, l) {
				t.Errorf("enigm %s does not state %q", strings.Join(args, " "), l)
			}
		}
	}
	if r := tr.run(""); !strings.Contains(r.stdout, "security") {
		t.Errorf("the command overview does not list `enigm security`:\n%s", r.stdout)
	}
}
