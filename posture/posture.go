// Package posture observes the OS security posture that key use depends on
// (DESIGN §4) and supplies the optional Enigm OS Trust and remote
// attestation states through pluggable providers.
//
// The Linux provider reads, without privileges:
//
//   - secure boot: the SecureBoot EFI variable under /sys/firmware/efi/efivars
//     ("on", "off", or "unknown" when the machine has no EFI variables);
//   - a tracer or debugger attached to this process (TracerPid in
//     /proc/self/status);
//   - the permissions of the keystore's files (group/world access is loose);
//   - whether the process runs as root.
//
// Level: compromised when a tracer is attached or the store is readable by
// others; trusted when secure boot is on and nothing else is wrong; degraded
// otherwise (secure boot off or unknown, or running as root).
//
// These are observations from inside the OS being judged: malware with root
// can lie to them. They raise the bar for casual compromise; hardware gates
// (TPM PolicyPCR over measured boot) are the stronger form of the same check.
package posture

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/enigm/enigm/policy"
)

// Provider reports the current OS security posture.
type Provider interface {
	Posture() policy.Posture
}

// OSTrustProvider reports the Enigm OS Trust (Trust Security Center) state.
type OSTrustProvider interface {
	OSTrust() policy.OSTrust
}

// AttestationProvider reports the latest remote attestation outcome.
type AttestationProvider interface {
	Attestation() policy.Attestation
}

// Linux observes posture on Linux.
type Linux struct {
	// Paths are the keystore's files and directories to check.
	Paths []string
	// Root is prepended to /sys and /proc paths (tests); empty means "/".
	Root string
	// EUID returns the effective uid (tests); nil means os.Geteuid.
	EUID func() int
}

// The EFI global-variable GUID's SecureBoot variable.
const secureBootVar = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// Posture observes now.
func (l *Linux) Posture() policy.Posture {
	root := l.Root
	if root == "" {
		root = "/"
	}
	var facts []string
	compromised, degraded := false, false

	switch sb := secureBoot(filepath.Join(root, secureBootVar)); sb {
	case "on":
		facts = append(facts, "secure_boot=on")
	default:
		facts = append(facts, "secure_boot="+sb)
		degraded = true
	}

	if pid, ok := tracerPid(filepath.Join(root, "proc/self/status")); !ok {
		facts = append(facts, "tracer=unknown")
		degraded = true
	} else if pid != "0" {
		facts = append(facts, "tracer_attached")
		compromised = true
	}

	loose := false
	for _, p := range l.Paths {
		st, err := os.Stat(p)
		if err == nil && st.Mode().Perm()&0o077 != 0 {
			loose = true
		}
	}
	if loose {
		facts = append(facts, "store_permissions=loose")
		compromised = true
	} else if len(l.Paths) > 0 {
		facts = append(facts, "store_permissions=ok")
	}

	euid := os.Geteuid
	if l.EUID != nil {
		euid = l.EUID
	}
	if euid() == 0 {
		facts = append(facts, "running_as_root")
		degraded = true
	}

	level := policy.PostureTrusted
	switch {
	case compromised:
		level = policy.PostureCompromised
	case degraded:
		level = policy.PostureDegraded
	}
	return policy.Posture{Level: level, Facts: facts}
}

// secureBoot reads the SecureBoot variable: 4 attribute bytes, then one data
// byte (1 = enabled).
func secureBoot(path string) string {
	b, err := os.ReadFile(path)
	switch {
	case err != nil:
		return "unknown"
	case len(b) < 5:
		return "unknown"
	case b[4] == 1:
		return "on"
	}
	return "off"
}

func tracerPid(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "TracerPid:"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// Static is a provider with a fixed answer (tests, platforms that push
// their state).
type Static policy.Posture

// Posture returns the fixed posture.
func (s Static) Posture() policy.Posture { return policy.Posture(s) }
