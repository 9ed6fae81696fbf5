package chain

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/wire"
)

// Device is a device's public record, as a link that adds it carries.
//
// There is no non-interactive proof of possession for a KEM key: the KEM
// key is bound to the device by the identity key's signature over the link
// (and by the binding key's, when present), which proves that the holder
// of the identity key published it, not that it holds the KEM private key.
type Device struct {
	ID       DeviceID
	Name     string            // display name: 1–MaxNameLen bytes of printable UTF-8
	Identity *hybrid.PublicKey // signs links and approvals
	KEM      []byte            // HPKE MLKEM768X25519 public key (KEMKeySize bytes): receives message and call keys
	Binding  *ecdsa.PublicKey  // P-256 hardware binding key; nil on devices without one
	Level    Level             // protection level the device reports
	Evidence *Evidence         // attestation evidence; nil when none
}

var kemSuite = hpke.MLKEM768X25519()

// KEMPublicKey parses the device's KEM key for use with crypto/hpke.
func (d *Device) KEMPublicKey() (hpke.PublicKey, error) {
	k, err := kemSuite.NewPublicKey(d.KEM)
	if err != nil {
		return nil, errorf(ErrBadKey, "KEM key of device %s: %v", d.ID, err)
	}
	return k, nil
}

// Hash returns the hash of the device record's canonical encoding, as
// enrollment approvals name it.
func (d *Device) Hash() (Hash, error) {
	w, err := d.wire()
	if err != nil {
		return Hash{}, err
	}
	return deviceHash(&w)
}

func deviceHash(w *wDevice) (Hash, error) {
	b, err := wire.Marshal(w)
	if err != nil {
		return Hash{}, errorf(ErrMalformed, "encode device record: %v", err)
	}
	return domainHash(prefixDevice, b), nil
}

func (d *Device) wire() (wDevice, error) {
	if d.Identity == nil || d.KEM == nil {
		return wDevice{}, errorf(ErrMalformed, "device %s: identity and KEM keys are required", d.ID)
	}
	w := wDevice{
		ID:       bytes.Clone(d.ID[:]),
		Name:     d.Name,
		Identity: d.Identity.Bytes(),
		KEM:      d.KEM,
		Level:    string(d.Level),
	}
	if d.Binding != nil {
		b, err := d.Binding.Bytes()
		if err != nil {
			return wDevice{}, errorf(ErrBadKey, "binding key: %v", err)
		}
		w.Binding = b
	}
	if d.Evidence != nil {
		w.Evidence = &wEvidence{Type: d.Evidence.Type, Data: d.Evidence.Data}
	}
	return w, nil
}

// parseDevice checks and parses a decoded device record.
func parseDevice(w *wDevice) (Device, error) {
	var d Device
	if len(w.ID) != DeviceIDSize {
		return d, errorf(ErrMalformed, "device id is %d bytes, want %d", len(w.ID), DeviceIDSize)
	}
	copy(d.ID[:], w.ID)
	if err := checkText("device name", w.Name, MaxNameLen); err != nil {
		return d, err
	}
	d.Name = w.Name
	var err error
	if d.Identity, err = parseHybridKey("identity key of device "+d.ID.String(), w.Identity); err != nil {
		return d, err
	}
	if err = checkKEMKey(w.KEM); err != nil {
		return d, err
	}
	d.KEM = w.KEM
	d.Level = Level(w.Level)
	if !d.Level.Valid() {
		return d, errorf(ErrProtectionLevel, "device %s reports unknown level %q", d.ID, w.Level)
	}
	if w.Binding != nil {
		if d.Level == LevelSoftware {
			return d, errorf(ErrMalformed, "device %s has a hardware binding key but reports level %q", d.ID, d.Level)
		}
		if d.Binding, err = parseBindingKey(w.Binding); err != nil {
			return d, err
		}
	}
	if w.Evidence != nil {
		if err := checkText("attestation type", w.Evidence.Type, MaxAttestationTypeLen); err != nil {
			return d, err
		}
		if len(w.Evidence.Data) == 0 || len(w.Evidence.Data) > MaxAttestationSize {
			return d, errorf(ErrTooLarge, "attestation evidence is %d bytes, want 1-%d", len(w.Evidence.Data), MaxAttestationSize)
		}
		d.Evidence = &Evidence{Type: w.Evidence.Type, Data: w.Evidence.Data}
	}
	return d, nil
}

func parseHybridKey(what string, b []byte) (*hybrid.PublicKey, error) {
	k, err := hybrid.ParsePublicKey(b)
	switch {
	case errors.Is(err, hybrid.ErrMissingPQ):
		return nil, fmt.Errorf("%w: %s: %w", ErrMissingPQ, what, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %w", ErrBadKey, what, err)
	}
	return k, nil
}

// checkKEMKey validates an HPKE MLKEM768X25519 public key: the ML-KEM-768
// encapsulation key (1,184 bytes) followed by the X25519 key (32 bytes).
// It performs exactly the input checks crypto/hpke's NewPublicKey makes
// (FIPS 203 §7.2: the length, and every encoded coefficient below q; any 32
// bytes are an X25519 key) without expanding the ML-KEM matrix, which costs
// more than the checks; a test compares it with crypto/hpke.
func checkKEMKey(b []byte) error {
	if len(b) != KEMKeySize {
		return errorf(ErrBadKey, "KEM key is %d bytes, want %d (MLKEM768X25519)", len(b), KEMKeySize)
	}
	const q = 3329
	t := b[:3*384] // three polynomials, 256 12-bit coefficients each
	for i := 0; i < len(t); i += 3 {
		c0 := uint16(t[i]) | uint16(t[i+1]&0x0f)<<8
		c1 := uint16(t[i+1])>>4 | uint16(t[i+2])<<4
		if c0 >= q || c1 >= q {
			return errorf(ErrBadKey, "KEM key: ML-KEM coefficient out of range")
		}
	}
	return nil
}

func parseBindingKey(b []byte) (*ecdsa.PublicKey, error) {
	if len(b) != BindingKeySize {
		return nil, errorf(ErrBadKey, "binding key is %d bytes, want %d (uncompressed P-256)", len(b), BindingKeySize)
	}
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
	if err != nil {
		return nil, errorf(ErrBadKey, "binding key: %v", err)
	}
	return k, nil
}

// checkText accepts 1–max bytes of valid UTF-8 without control or format
// characters (no newlines, no bidirectional overrides that could make one
// name look like another).
func checkText(what, s string, max int) error {
	if len(s) == 0 || len(s) > max {
		return errorf(ErrMalformed, "%s is %d bytes, want 1-%d", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return errorf(ErrMalformed, "%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return errorf(ErrMalformed, "%s holds control or format character %U", what, r)
		}
	}
	return nil
}

// levelMeets reports whether l satisfies the minimum min ("" is none).
func levelMeets(l, min Level) bool { return min == "" || l.Rank() >= min.Rank() }

// Hash domains: every hash the chain computes is SHA-256 over a prefix that
// names what is hashed, then the canonical bytes.
const (
	prefixLink   = "enigm/v1/link-hash\x00"
	prefixDevice = "enigm/v1/device-hash\x00"
	prefixBody   = "enigm/v1/body-hash\x00"
)

func domainHash(prefix string, b []byte) Hash {
	h := sha256.New()
	h.Write([]byte(prefix))
	h.Write(b)
	var out Hash
	h.Sum(out[:0])
	return out
}
