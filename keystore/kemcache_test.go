package keystore

import (
	"crypto/hpke"
	"testing"
)

// The cache of parsed recipient keys stays bounded, never caches a key that
// does not parse, and gives back the key it was asked for.
func TestRecipientKeyCache(t *testing.T) {
	bad := make([]byte, 1215) // one byte short
	for range 2 {
		if _, err := recipientKey(bad); err == nil {
			t.Fatal("a key one byte short parsed")
		}
	}
	var first []byte
	for i := range maxParsedRecipients + 10 {
		k, err := hpke.MLKEM768X25519().GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub := k.PublicKey().Bytes()
		if i == 0 {
			first = pub
		}
		pk, err := recipientKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if string(pk.Bytes()) != string(pub) {
			t.Fatal("the cache returned another key")
		}
	}
	parsedRecipients.Lock()
	n, hasBad := len(parsedRecipients.m), parsedRecipients.m[string(bad)] != nil
	parsedRecipients.Unlock()
	if n > maxParsedRecipients || hasBad {
		t.Fatalf("%d entries (bound %d), bad key cached: %v", n, maxParsedRecipients, hasBad)
	}
	if pk, err := recipientKey(first); err != nil || string(pk.Bytes()) != string(first) {
		t.Fatalf("an evicted key: %v", err)
	}
}
