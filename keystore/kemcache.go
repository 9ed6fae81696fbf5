package keystore

import (
	"crypto/hpke"
	"fmt"
	"sync"
)

// maxParsedRecipients bounds the cache of parsed recipient KEM keys.
const maxParsedRecipients = 1024

// parsedRecipients caches recipient KEM public keys parsed for sealing.
// Parsing an MLKEM768-X25519 key expands the ML-KEM matrix, about a sixth
// of the cost of sealing to it, and a sender seals to the same devices
// message after message. The keys are public; the cache is keyed by their
// whole encoding, so a key is never confused with another, and bounded:
// when full, an arbitrary entry leaves.
var parsedRecipients = struct {
	sync.Mutex
	m map[string]hpke.PublicKey
}{m: map[string]hpke.PublicKey{}}

// recipientKey returns the parsed HPKE public key of recipient.
func recipientKey(recipient []byte) (hpke.PublicKey, error) {
	c := &parsedRecipients
	c.Lock()
	pk, ok := c.m[string(recipient)]
	c.Unlock()
	if ok {
		return pk, nil
	}
	pk, err := hpke.MLKEM768X25519().NewPublicKey(recipient)
	if err != nil {
		return nil, fmt.Errorf("keystore: recipient KEM key: %w", err)
	}
	c.Lock()
	defer c.Unlock()
	if len(c.m) >= maxParsedRecipients {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[string(recipient)] = pk
	return pk, nil
}
