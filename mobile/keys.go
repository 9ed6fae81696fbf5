package mobile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"fmt"

	"github.com/enigm/enigm/keystore"
)

// KeyInfo describes a key. It holds nothing secret.
type KeyInfo struct {
	// ID: 32 hex digits.
	ID string
	// KeyClass: "identity", "kem", "session" or "binding". (Not "Class":
	// gobind would make it getClass() in Java, which Object.getClass()
	// forbids, and a "class" property in Objective-C, which overrides
	// NSObject's -class.)
	KeyClass string
	// Algorithm: "hybrid-ed25519-mldsa65", "ed25519", … (as the CLI prints).
	Algorithm string
	// State: "created", "active", "superseded", "retired" or "revoked".
	State string
	// Created and Changed: Unix milliseconds.
	Created int64
	Changed int64
	// Public key encoding; empty for session keys.
	Public []byte
	// Resident: the key lives in the hardware (the binding key).
	Resident bool
	// Problem: set when the stored record is damaged.
	Problem string
}

func keyInfo(k keystore.KeyInfo) *KeyInfo {
	return &KeyInfo{ID: k.ID.String(), KeyClass: k.Class.String(), Algorithm: k.Algorithm.String(), State: k.State.String(),
		Created: k.Created.UnixMilli(), Changed: k.Changed.UnixMilli(), Public: k.Public, Resident: k.Resident, Problem: k.Problem}
}

// KeyList is a snapshot of the keystore's keys, read by index.
type KeyList struct{ keys []keystore.KeyInfo }

// Len returns the number of keys.
func (l *KeyList) Len() int { return len(l.keys) }

// At returns key i (0 ≤ i < Len).
func (l *KeyList) At(i int) (*KeyInfo, error) {
	if i < 0 || i >= len(l.keys) {
		return nil, fail(CodeNotFound, fmt.Errorf("key index %d outside [0, %d)", i, len(l.keys)))
	}
	return keyInfo(l.keys[i]), nil
}

// List returns every key, oldest first.
func (k *Keystore) List() (*KeyList, error) {
	keys, err := k.s.List()
	if err != nil {
		return nil, wrap(err)
	}
	return &KeyList{keys: keys}, nil
}

// ListJSON returns every key as JSON: {"version":1,"keys":[{"id":…,
// "class":…,"algorithm":…,"state":…,"created":…(ms),"public":…(base64),
// "resident":…,"problem":…}]}.
func (k *Keystore) ListJSON() (string, error) {
	keys, err := k.s.List()
	if err != nil {
		return "", wrap(err)
	}
	type jsonKey struct {
		ID        string `json:"id"`
		Class     string `json:"class,omitempty"`
		Algorithm string `json:"algorithm,omitempty"`
		State     string `json:"state,omitempty"`
		Created   int64  `json:"created,omitempty"`
		Public    []byte `json:"public,omitempty"`
		Resident  bool   `json:"resident"`
		Problem   string `json:"problem,omitempty"`
	}
	out := struct {
		Version int       `json:"version"`
		Keys    []jsonKey `json:"keys"`
	}{Version: 1, Keys: []jsonKey{}}
	for _, ki := range keys {
		i := keyInfo(ki)
		j := jsonKey{ID: i.ID, Resident: i.Resident, Problem: i.Problem}
		if ki.Problem == "" {
			j.Class, j.Algorithm, j.State, j.Created, j.Public = i.KeyClass, i.Algorithm, i.State, i.Created, i.Public
		}
		out.Keys = append(out.Keys, j)
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// Key describes one key; id may be a unique prefix of at least 6 digits.
func (k *Keystore) Key(id string) (*KeyInfo, error) {
	kid, err := k.s.Resolve(id)
	if err != nil {
		return nil, wrap(err)
	}
	info, err := k.s.Info(kid)
	if err != nil {
		return nil, wrap(err)
	}
	return keyInfo(info), nil
}

// Generate creates a key on this device and returns its id. class is
// "identity", "kem" or "session"; algorithm "" for the class default (or
// "ed25519" for a classical identity key); cause "" for account setup, or
// a lifecycle cause ("device_enrollment", "rotation", …). The key is
// active at once.
func (k *Keystore) Generate(class, algorithm, cause string) (string, error) {
	c, ok := keystore.ParseClass(class)
	if !ok || c == keystore.ClassBinding {
		return "", fail(CodeUnsupported, fmt.Errorf("class must be identity, kem or session, not %q", class))
	}
	opts := keystore.GenerateOptions{Activate: true, Persist: c == keystore.ClassSession}
	if algorithm != "" {
		a, ok := keystore.ParseAlgorithm(algorithm)
		if !ok {
			return "", fail(CodeUnsupported, fmt.Errorf("unknown algorithm %q", algorithm))
		}
		opts.Algorithm = a
	}
	var err error
	if opts.Cause, err = causeOf(cause); err != nil {
		return "", err
	}
	info, err := k.s.Generate(c, opts)
	if err != nil {
		return "", wrap(err)
	}
	return info.ID.String(), nil
}

// Rotate replaces an active key with a new one of the same class and
// returns the new key's id.
func (k *Keystore) Rotate(id string) (string, error) {
	kid, err := k.s.Resolve(id)
	if err != nil {
		return "", wrap(err)
	}
	info, err := k.s.Rotate(kid, keystore.RotateOptions{})
	if err != nil {
		return "", wrap(err)
	}
	return info.ID.String(), nil
}

// RevokeKey revokes one key for good.
func (k *Keystore) RevokeKey(id string) error {
	kid, err := k.s.Resolve(id)
	if err != nil {
		return wrap(err)
	}
	return wrap(k.s.RevokeKey(kid))
}

// Sign signs message with identity key id for the application purpose
// purpose (signing context "enigm/v1/app/<purpose>", see
// keystore.AppPurpose): never a protocol context, so an app cannot sign a
// chain link, an envelope or a login with it.
func (k *Keystore) Sign(id, purpose string, message []byte) ([]byte, error) {
	p, err := keystore.AppPurpose(purpose)
	if err != nil {
		return nil, fail(CodeFailed, err)
	}
	h, err := handle(k, id, k.s.Identity)
	if err != nil {
		return nil, wrap(err)
	}
	sig, err := h.Sign(p, message)
	return sig, wrap(err)
}

// KEMOpen decrypts application data sealed to KEM key id with SealTo and
// the same info (HPKE MLKEM768-X25519, info "enigm/v1/kem/app-data" 0x00 ||
// info). It opens application data only: the message and call keys sealed
// to the device stay inside the keystore.
func (k *Keystore) KEMOpen(id string, info, ciphertext []byte) ([]byte, error) {
	h, err := handle(k, id, k.s.KEM)
	if err != nil {
		return nil, wrap(err)
	}
	pt, err := h.OpenData(info, ciphertext)
	return pt, wrap(err)
}

// handle resolves id (a key id or a unique prefix of one) and returns the
// handle get gives for it (k.s.Identity, k.s.KEM).
func handle[H any](k *Keystore, id string, get func(keystore.KeyID) (H, error)) (H, error) {
	kid, err := k.s.Resolve(id)
	if err != nil {
		var none H
		return none, err
	}
	return get(kid)
}

// BindingPublicKey returns the hardware binding key's public key
// (uncompressed P-256 point), or a CodeNotFound error when the hardware
// holds no signing keys.
func (k *Keystore) BindingPublicKey() ([]byte, error) {
	bk, err := k.s.Binding()
	if err != nil {
		return nil, wrap(err)
	}
	pub, err := bk.Public()
	if err != nil {
		return nil, wrap(err)
	}
	b, err := pub.Bytes()
	return b, wrap(err)
}

// BindingSign signs message for the application purpose purpose with the
// hardware binding key (ASN.1 DER ECDSA over the digest
// keystore.BindingKey.Sign describes; BindingVerify checks it).
func (k *Keystore) BindingSign(purpose string, message []byte) ([]byte, error) {
	p, err := keystore.AppPurpose(purpose)
	if err != nil {
		return nil, fail(CodeFailed, err)
	}
	bk, err := k.s.Binding()
	if err != nil {
		return nil, wrap(err)
	}
	sig, err := bk.Sign(p, message)
	return sig, wrap(err)
}

// BindingVerify checks a signature made by BindingSign: public is the
// binding key's uncompressed P-256 point (BindingPublicKey).
func BindingVerify(public []byte, purpose string, message, signature []byte) error {
	p, err := keystore.AppPurpose(purpose)
	if err != nil {
		return fail(CodeFailed, err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), public)
	if err != nil {
		return fail(CodeFailed, fmt.Errorf("binding public key: %w", err))
	}
	return wrap(keystore.VerifyBinding(pub, p, message, signature))
}

// Verify checks a signature made by Sign for the application purpose
// purpose: algorithm as KeyInfo.Algorithm reports it, public the key's
// public encoding.
func Verify(algorithm string, public []byte, purpose string, message, signature []byte) error {
	a, ok := keystore.ParseAlgorithm(algorithm)
	if !ok {
		return fail(CodeUnsupported, fmt.Errorf("unknown algorithm %q", algorithm))
	}
	p, err := keystore.AppPurpose(purpose)
	if err != nil {
		return fail(CodeFailed, err)
	}
	return wrap(keystore.Verify(a, public, p, message, signature))
}

// SealTo encrypts application data to a device KEM public key (single-shot
// HPKE MLKEM768-X25519 / HKDF-SHA256 / AES-256-GCM, keystore.SealData);
// info binds the application's context, and KEMOpen opens it with the
// same info.
func SealTo(recipient, info, plaintext []byte) ([]byte, error) {
	ct, err := keystore.SealData(recipient, info, plaintext)
	return ct, wrap(err)
}
