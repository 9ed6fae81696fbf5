package chain

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"strings"
)

// SAS returns the short authentication string the user compares on the
// approving device and the new device before approving an enrollment: six
// decimal digits ("123 456") derived from the account, both devices' public
// records and the enrollment request (nonce and pairing code hash).
//
// A six-digit SAS resists a man in the middle only if neither side can
// choose its keys after seeing the other's inputs: the enrollment protocol
// must have the new device commit to its record (Device.Hash) before it
// learns anything the approving device contributes. See
// docs/design/chain.md.
func SAS(account AccountID, approver, joining *Device, nonce [NonceSize]byte, pairingHash [PairingHashSize]byte) (string, error) {
	ah, err := approver.Hash()
	if err != nil {
		return "", err
	}
	jh, err := joining.Hash()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte("enigm/v1/sas\x00"))
	for _, b := range [][]byte{account[:], ah[:], jh[:], nonce[:], pairingHash[:]} {
		h.Write(b)
	}
	sum := h.Sum(nil)
	v := binary.BigEndian.Uint64(sum[:8]) % 1_000_000
	return fmt.Sprintf("%03d %03d", v/1000, v%1000), nil
}

// Fingerprint returns the account fingerprint that contacts compare out of
// band: 60 decimal digits in twelve groups of five, from SHA-512 over the
// account id. The account id is the genesis link's hash, and every later
// link is chained to it, so the fingerprint stays the same for the life of
// the account while committing to all of its history.
func Fingerprint(account AccountID) string {
	h := sha512.New()
	h.Write([]byte("enigm/v1/account-fingerprint\x00"))
	h.Write(account[:])
	sum := h.Sum(nil)
	groups := make([]string, 12)
	for i := range groups {
		// 5 bytes (40 bits) per group mod 10^5: bias below 2^-23.
		chunk := sum[i*5 : i*5+5]
		v := uint64(chunk[0])<<32 | uint64(chunk[1])<<24 | uint64(chunk[2])<<16 | uint64(chunk[3])<<8 | uint64(chunk[4])
		groups[i] = fmt.Sprintf("%05d", v%100000)
	}
	return strings.Join(groups, " ")
}
