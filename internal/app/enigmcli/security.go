package enigmcli

import (
	"fmt"

	"github.com/enigm/enigm/internal/clikit"
)

// securityText states, for users, what Enigm does not protect: the key
// management model's security limitations, each with what it means here.
// README.md's "What Enigm does not protect" says the same.
const securityText = `What Enigm does not protect

Enigm reduces key exposure and hardens the trust in each device; it does
not remove every risk. Know these limits:

1. Hardware protection only where there is hardware. With the TPM, a
   PKCS#11 token or a phone's secure element, the wrapping keys open only
   in that hardware, under its policy. With the software backend (level
   "software") a copied home can be attacked offline by guessing the
   passphrase (slowed by Argon2id), and a copy taken before a revocation
   can still use its keys offline. "enigm keystore status" shows your
   level; an organisation can require a minimum.

2. Large keys live outside the hardware. ML-DSA, ML-KEM and Curve25519
   keys cannot be stored inside TPMs, tokens or secure elements: they are
   wrapped outside, under keys the hardware protects, and are in this
   process's memory while the keystore is unlocked.

3. A compromised device can expose content after it decrypted it. Malware
   or a root attacker on an unlocked device reads what you read, and can
   read unlocked keys from memory and lie to the posture checks.

4. Revocation stops future trust, not past reading. A revoked device gets
   no new messages or calls and destroys its keys when it learns of the
   revocation, but what it already decrypted may remain on it.

5. Recovery restores the account, never old messages. The recovery code
   adds a new device after a visible waiting period that your devices can
   veto; the new device cannot read messages sent before it joined.

6. Administrators manage devices, not keys. An organisation's admin can
   approve, deny and revoke devices of managed accounts; Enigm Command and
   its admins never hold a device's private keys or message keys.

7. OS security posture is part of trust. A debugger, a rooted device or a
   store with loose permissions lowers the posture, and keys that require
   more are refused; a fully compromised OS can defeat these checks.

Design notes with the details: docs/design/model.md (every statement of
the model traced to its code and tests), keystore.md, command.md.
`

func init() {
	register(func(c *Ctx) *clikit.Command {
		return &clikit.Command{
			Path:    "security",
			Group:   "info",
			Summary: "what Enigm does not protect (read this once)",
			Help: securityText + `
examples:
  enigm security
  enigm help security`,
			Run: c.do(func(c *Ctx) error {
				_, err := fmt.Fprint(c.Stdout, securityText)
				return err
			}),
		}
	})
}
