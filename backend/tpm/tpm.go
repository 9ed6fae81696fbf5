// Package tpm is the TPM 2.0 backend: the keystore's wrapping keys are
// sealed as TPM objects that only the unlock secret (and, optionally, the
// measured boot state) can unseal, and the hardware binding key is an ECDSA
// P-256 key that never leaves the TPM.
//
// # Key hierarchy
//
//	owner hierarchy
//	└─ SRK: ECC P-256 primary, TCG reference template (re-derivable)
//	   └─ store key: ECC P-256 restricted decrypt key, persistent only
//	      ├─ check object: sealed data proving the secret at Open
//	      ├─ sealed objects: one per Seal (the class wrapping keys)
//	      └─ binding keys: ECDSA P-256, fixedTPM|fixedParent|sensitiveDataOrigin
//	endorsement hierarchy
//	└─ attestation key: restricted ECDSA P-256 primary (fixed template)
//
// The store key is created with TPM2_Create under the SRK, made persistent
// with TPM2_EvictControl, and its private blob is dropped. Everything the
// store ever sealed is a child of it, so [Backend.Destroy] — evicting it —
// makes every earlier copy of the state and of the sealed blobs useless.
//
// # Gates
//
//   - unlock_secret: sealed objects carry a policy with PolicyAuthValue; their
//     auth value is HKDF-SHA256(secret, per-store salt). They are
//     dictionary-attack protected, so the TPM limits guessing.
//   - boot_state (with [Options.PCRs]): the policy also holds PolicyPCR over
//     the SHA-256 PCR values recorded at Provision.
//   - non_exportable: binding keys are fixedTPM|fixedParent.
//   - destroy: see above.
//
// Commands that carry secrets run in sessions salted to the store key —
// whose Name the state pins — with parameter encryption, so neither the
// sealed secrets nor material to guess the unlock secret from cross the bus
// in the clear.
//
// See docs/design/tpm.md for the formats and the threat model.
package tpm

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/internal/format"
)

// Options configure the backend.
type Options struct {
	// Device names the TPM: "" for /dev/tpmrm0, a device path,
	// "unix:/path" for swtpm's UnixIO socket or "tcp:host:port" for
	// swtpm's TCP socket (both raw TPM commands).
	Device string
	// Open, when set, is used instead of Device to reach the TPM (tests
	// use it for the in-process simulator). Each call returns a new
	// connection, which the backend closes.
	Open func() (transport.TPMCloser, error)
	// PCRs, when not empty, binds new stores to the current values of
	// these SHA-256 PCRs (0–23) with PolicyPCR, and the backend reports
	// the boot_state gate. Opening a store provisioned with another
	// selection fails with ErrState.
	PCRs []int
	// OwnerAuth is the owner hierarchy's authorization value, usually
	// empty. It must be kept secret.
	OwnerAuth []byte
	// EndorsementAuth is the endorsement hierarchy's authorization value
	// (for the attestation key), usually empty. It must be kept secret.
	EndorsementAuth []byte
	// HandleBase is the first persistent handle tried for a new store;
	// zero means DefaultHandleBase. HandleRange handles from it are
	// searched for a free one.
	HandleBase uint32
}

// Persistent handles for store keys: 0x81454E00 ("EN") onwards, outside the
// ranges the TCG provisioning guidance reserves for SRKs and EKs.
const (
	DefaultHandleBase = 0x81454E00
	HandleRange       = 256
)

// MaxSealSize is the largest secret Seal accepts: the TPM's limit for
// sealed data (MAX_SYM_DATA).
const MaxSealSize = 128

// EvidenceType is the type of the evidence Attest returns.
const EvidenceType = "tpm2-certify"

// Backend is the TPM 2.0 backend. It holds no secret and no connection;
// sessions hold their own connection.
type Backend struct {
	open            func() (transport.TPMCloser, error)
	pcrMask         uint32
	ownerAuth       []byte
	endorsementAuth []byte
	handleBase      uint32
}

var _ backend.Backend = (*Backend)(nil)

// New returns a TPM backend. It does not touch the TPM.
func New(opts Options) (*Backend, error) {
	b := &Backend{
		open:            opts.Open,
		ownerAuth:       slices.Clone(opts.OwnerAuth),
		endorsementAuth: slices.Clone(opts.EndorsementAuth),
		handleBase:      opts.HandleBase,
	}
	if b.open == nil {
		o, err := opener(opts.Device)
		if err != nil {
			return nil, err
		}
		b.open = o
	}
	for _, p := range opts.PCRs {
		if p < 0 || p > format.MaxPCR {
			return nil, fmt.Errorf("tpm: PCR %d outside 0–%d", p, format.MaxPCR)
		}
		b.pcrMask |= 1 << p
	}
	if b.handleBase == 0 {
		b.handleBase = DefaultHandleBase
	}
	if b.handleBase < format.MinPersistent || b.handleBase+HandleRange-1 > format.MaxPersistent {
		return nil, fmt.Errorf("tpm: handle base 0x%08x: the range must lie in 0x%08x–0x%08x", b.handleBase, format.MinPersistent, format.MaxPersistent)
	}
	return b, nil
}

// Capabilities reports a hardware TPM backend.
func (b *Backend) Capabilities() backend.Capabilities {
	gates := []backend.Gate{backend.GateUnlockSecret, backend.GateNonExportable, backend.GateDestroy}
	if b.pcrMask != 0 {
		gates = append(gates, backend.GateBootState)
	}
	return backend.Capabilities{
		Name:          "tpm",
		Level:         backend.LevelHardwareTPM,
		Resident:      []string{backend.AlgP256, backend.AlgSealedBox},
		MaxSealSize:   MaxSealSize,
		HardwareGates: gates,
		Attestation:   []string{EvidenceType},
	}
}

// connect opens a connection to the TPM.
func (b *Backend) connect(ctx context.Context) (transport.TPMCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := b.open()
	if err != nil {
		return nil, fmt.Errorf("%w: cannot reach the TPM: %v", backend.ErrUnavailable, err)
	}
	return retrying{t}, nil
}

// Auth value derivation. Both values must be kept secret.
const (
	infoSeal = "enigm/v1/tpm/auth/sealed-data"
	infoBind = "enigm/v1/tpm/auth/binding-key"
)

func deriveAuth(secret, salt []byte, info string) []byte {
	// The auth value holds no zero byte: go-tpm v0.9.8 computes session
	// HMAC keys by cutting an auth value at its first zero byte (meant to
	// trim only trailing zeros, TPM 2.0 Part 1, 19.6.5), which disagrees
	// with the TPM. Dropping zero bytes from a longer HKDF output keeps the
	// value uniform over non-zero bytes.
	for counter := 0; ; counter++ {
		k, err := hkdf.Key(sha256.New, secret, salt, fmt.Sprintf("%s/%d", info, counter), 128)
		if err != nil { // only for lengths HKDF cannot produce
			panic(err)
		}
		out := make([]byte, 0, 32)
		for _, c := range k {
			if c != 0 && len(out) < 32 {
				out = append(out, c)
			}
		}
		clear(k)
		if len(out) == 32 {
			return out
		}
		clear(out)
	}
}

// checkValue is what the check object holds. It is not secret: unsealing
// it proves the unlock secret, and comparing it catches a TPM that returns
// something else.
var checkValue = []byte("enigm/v1/tpm/check-object")

// storeKey is a verified persistent store key.
type storeKey struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public tpm2.TPMTPublic
}

// parentAuth authorizes the store key (empty auth value) as a parent in a
// session salted to the store key itself, encrypting the first command
// parameter (the sensitive area of a Create).
func (k *storeKey) parentAuth() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: k.handle, Name: k.name,
		Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Salted(k.handle, k.public), tpm2.AESEncryption(128, tpm2.EncryptIn))}
}

// loadAuth authorizes the store key as a parent for Load: nothing secret
// crosses the bus.
func (k *storeKey) loadAuth() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(nil)}
}

// salted returns a one-use HMAC session proving auth, salted to the store
// key, so a bus observer cannot test guesses of the secret against it.
func (k *storeKey) salted(auth []byte, opts ...tpm2.AuthOption) tpm2.Session {
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16, append([]tpm2.AuthOption{tpm2.Salted(k.handle, k.public), tpm2.Auth(auth)}, opts...)...)
}

// findStoreKey reads the persistent store key and checks it is the one the
// state names.
func findStoreKey(t transport.TPM, st *format.State) (*storeKey, error) {
	rsp, err := (tpm2.ReadPublic{ObjectHandle: tpm2.TPMHandle(st.Handle)}).Execute(t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, fmt.Errorf("%w: no store key at persistent handle 0x%08x (the store was destroyed, the TPM was cleared, or the state is from another machine)", backend.ErrDestroyed, st.Handle)
		}
		return nil, tpmErr("reading the store key", err)
	}
	pubBytes := rsp.OutPublic.Bytes()
	// The Name is computed here from the public area, not taken from
	// the TPM's answer, so the salt key is pinned by the state.
	if !bytesEqual(format.Name(pubBytes), st.StoreName) {
		return nil, fmt.Errorf("%w: persistent handle 0x%08x holds another object (the store was destroyed and the handle reused, or the state is from another TPM)", backend.ErrDestroyed, st.Handle)
	}
	pub, err := matchTemplate(pubBytes, storeKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("%w: the store key has an unexpected public area: %v", backend.ErrState, err)
	}
	return &storeKey{handle: tpm2.TPMHandle(st.Handle), name: tpm2.TPM2BName{Buffer: slices.Clone(st.StoreName)}, public: *pub}, nil
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// Provision creates a store key in the TPM and a check object sealed to
// secret, and returns the state naming them.
func (b *Backend) Provision(ctx context.Context, secret []byte) ([]byte, error) {
	if len(secret) == 0 {
		return nil, errors.New("tpm: the unlock secret must not be empty")
	}
	t, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer t.Close()

	key, err := b.createStoreKey(t)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			b.evict(t, key.handle, key.name)
		}
	}()

	st := &format.State{
		Version:   format.StateVersion,
		Handle:    uint32(key.handle),
		StoreName: key.name.Buffer,
		Salt:      make([]byte, format.SaltSize),
		PCRMask:   b.pcrMask,
	}
	rand.Read(st.Salt)
	if st.PCRMask != 0 {
		if st.PCRDigest, err = readPCRDigest(t, st.PCRMask); err != nil {
			return nil, err
		}
	}
	auth := deriveAuth(secret, st.Salt, infoSeal)
	defer clear(auth)
	pol := pcrPolicy{mask: st.PCRMask, digest: st.PCRDigest}
	obj, err := createSealed(t, key, pol, st.Commitment(), auth, checkValue)
	if err != nil {
		return nil, err
	}
	st.CheckPublic, st.CheckPrivate = obj.Public, obj.Private
	enc, err := format.MarshalState(st)
	if err != nil {
		return nil, fmt.Errorf("tpm: encoding the state: %w", err)
	}
	ok = true
	return enc, nil
}

// createStoreKey creates the per-store key under the SRK and makes it
// persistent at a free handle. Its private blob is never returned.
func (b *Backend) createStoreKey(t transport.TPM) (*storeKey, error) {
	srk, err := (tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth(b.ownerAuth))},
		InPublic:      tpm2.New2B(srkTemplate()),
	}).Execute(t)
	if err != nil {
		return nil, hierarchyErr("creating the storage root key", err)
	}
	defer flush(t, srk.ObjectHandle)

	created, err := (tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2B(storeKeyTemplate()),
	}).Execute(t)
	if err != nil {
		return nil, tpmErr("creating the store key", err)
	}
	loaded, err := (tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    created.OutPrivate,
		InPublic:     created.OutPublic,
	}).Execute(t)
	clear(created.OutPrivate.Buffer)
	if err != nil {
		return nil, tpmErr("loading the store key", err)
	}
	defer flush(t, loaded.ObjectHandle)

	pubBytes := created.OutPublic.Bytes()
	pub, err := matchTemplate(pubBytes, storeKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("%w: the TPM created a store key unlike the template: %v", backend.ErrUnavailable, err)
	}
	name := format.Name(pubBytes)
	if !bytesEqual(name, loaded.Name.Buffer) {
		return nil, fmt.Errorf("%w: the TPM reports another name for the store key", backend.ErrUnavailable)
	}

	used, err := b.persistentInRange(t)
	if err != nil {
		return nil, err
	}
	for h := b.handleBase; h < b.handleBase+HandleRange; h++ {
		if used[h] {
			continue
		}
		_, err := (tpm2.EvictControl{
			Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth(b.ownerAuth))},
			ObjectHandle:     tpm2.NamedHandle{Handle: loaded.ObjectHandle, Name: loaded.Name},
			PersistentHandle: tpm2.TPMHandle(h),
		}).Execute(t)
		switch {
		case err == nil:
			return &storeKey{handle: tpm2.TPMHandle(h), name: tpm2.TPM2BName{Buffer: name}, public: *pub}, nil
		case errors.Is(err, tpm2.TPMRCNVDefined):
			continue // taken meanwhile by another process
		case errors.Is(err, tpm2.TPMRCNVSpace):
			return nil, fmt.Errorf("%w: the TPM has no room for another persistent key; destroy unused stores", backend.ErrUnavailable)
		default:
			return nil, hierarchyErr("making the store key persistent", err)
		}
	}
	return nil, fmt.Errorf("%w: no free persistent handle in 0x%08x–0x%08x", backend.ErrUnavailable, b.handleBase, b.handleBase+HandleRange-1)
}

func hierarchyErr(what string, err error) error {
	if errors.Is(err, tpm2.TPMRCAuthFail) || errors.Is(err, tpm2.TPMRCBadAuth) {
		return fmt.Errorf("%w: %s: the TPM refuses the hierarchy authorization (set Options.OwnerAuth/EndorsementAuth)", backend.ErrUnavailable, what)
	}
	return tpmErr(what, err)
}

// persistentInRange lists the persistent handles in use in the backend's
// range.
func (b *Backend) persistentInRange(t transport.TPM) (map[uint32]bool, error) {
	used := map[uint32]bool{}
	for _, h := range listPersistent(t, b.handleBase, HandleRange) {
		used[uint32(h)] = true
	}
	return used, nil
}

// listPersistent returns the persistent handles in [from, from+n). An error
// reading the list yields what was read: the caller's EvictControl then
// reports any collision.
func listPersistent(t transport.TPM, from uint32, n uint32) []tpm2.TPMHandle {
	var out []tpm2.TPMHandle
	next := from
	for i := 0; i < 64 && next < from+n; i++ {
		rsp, err := (tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: next, PropertyCount: n}).Execute(t)
		if err != nil {
			return out
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil || len(hs.Handle) == 0 {
			return out
		}
		for _, h := range hs.Handle {
			if uint32(h) >= from+n || uint32(h) < next {
				return out
			}
			out = append(out, h)
			next = uint32(h) + 1
		}
		if !rsp.MoreData {
			break
		}
	}
	return out
}

// readPCRDigest returns SHA-256 over the current values of the selected
// SHA-256 PCRs, in ascending order (as PolicyPCR computes it).
func readPCRDigest(t transport.TPM, mask uint32) ([]byte, error) {
	values := map[uint][]byte{}
	remaining := mask
	for i := 0; remaining != 0 && i < 24; i++ {
		rsp, err := (tpm2.PCRRead{PCRSelectionIn: pcrSelection(remaining)}).Execute(t)
		if err != nil {
			return nil, tpmErr("reading PCRs", err)
		}
		var got uint32
		for _, sel := range rsp.PCRSelectionOut.PCRSelections {
			if sel.Hash != tpm2.TPMAlgSHA256 {
				continue
			}
			for j, bits := range sel.PCRSelect {
				if j < 3 {
					got |= uint32(bits) << (8 * j)
				}
			}
		}
		pcrs := format.MaskPCRs(got)
		if got == 0 || got&^remaining != 0 || len(rsp.PCRValues.Digests) != len(pcrs) {
			return nil, fmt.Errorf("%w: the TPM cannot read SHA-256 PCRs %v", backend.ErrUnavailable, format.MaskPCRs(remaining))
		}
		for j, d := range rsp.PCRValues.Digests {
			if len(d.Buffer) != sha256.Size {
				return nil, fmt.Errorf("%w: PCR value of %d bytes", backend.ErrUnavailable, len(d.Buffer))
			}
			values[pcrs[j]] = d.Buffer
		}
		remaining &^= got
	}
	if remaining != 0 {
		return nil, fmt.Errorf("%w: could not read PCRs %v", backend.ErrUnavailable, format.MaskPCRs(remaining))
	}
	h := sha256.New()
	for _, p := range format.MaskPCRs(mask) {
		h.Write(values[p])
	}
	return h.Sum(nil), nil
}

// createSealed creates a sealed-data object holding data under the store
// key, with the sealed policy bound to bind and the given auth value.
func createSealed(t transport.TPM, key *storeKey, pol pcrPolicy, bind, auth, data []byte) (*format.Object, error) {
	tmpl := sealedTemplate(sealedPolicy(pol, bind))
	rsp, err := (tpm2.Create{
		ParentHandle: key.parentAuth(),
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			UserAuth: tpm2.TPM2BAuth{Buffer: auth},
			Data:     tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: data}),
		}},
		InPublic: tpm2.New2B(tmpl),
	}).Execute(t)
	if err != nil {
		return nil, createErr("sealing", err)
	}
	pub := rsp.OutPublic.Bytes()
	if _, err := matchTemplate(pub, tmpl); err != nil {
		return nil, fmt.Errorf("%w: the TPM created a sealed object unlike the template: %v", backend.ErrUnavailable, err)
	}
	return &format.Object{Kind: format.KindSealed, Public: slices.Clone(pub), Private: slices.Clone(rsp.OutPrivate.Buffer)}, nil
}

// unsealObject loads a sealed object (already checked against its expected
// policy) and unseals it through the policy, in a session salted to the
// store key with response encryption.
func unsealObject(t transport.TPM, key *storeKey, pol pcrPolicy, bind, auth []byte, obj *format.Object, corrupt error) ([]byte, error) {
	loaded, err := (tpm2.Load{
		ParentHandle: key.loadAuth(),
		InPrivate:    tpm2.TPM2BPrivate{Buffer: obj.Private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](obj.Public),
	}).Execute(t)
	if err != nil {
		return nil, loadErr("loading sealed data", err, corrupt)
	}
	defer flush(t, loaded.ObjectHandle)
	if !bytesEqual(loaded.Name.Buffer, format.Name(obj.Public)) {
		return nil, fmt.Errorf("%w: the TPM reports another name for the sealed object", backend.ErrUnavailable)
	}
	sess := tpm2.Policy(tpm2.TPMAlgSHA256, 16, runSealedPolicy(pol, bind),
		tpm2.Salted(key.handle, key.public), tpm2.AESEncryption(128, tpm2.EncryptOut), tpm2.Auth(auth))
	rsp, err := (tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: loaded.ObjectHandle, Name: loaded.Name, Auth: sess}}).Execute(t)
	if err != nil {
		return nil, authErr("unsealing", err, corrupt)
	}
	return rsp.OutData.Buffer, nil
}

// flush drops a transient object; a failure only leaks a slot that the
// resource manager frees when the connection closes.
func flush(t transport.TPM, h tpm2.TPMHandle) {
	_, _ = (tpm2.FlushContext{FlushHandle: h}).Execute(t)
}

// evict removes a persistent store key, if the object at h has name.
func (b *Backend) evict(t transport.TPM, h tpm2.TPMHandle, name tpm2.TPM2BName) error {
	_, err := (tpm2.EvictControl{
		Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.Auth(b.ownerAuth))},
		ObjectHandle:     tpm2.NamedHandle{Handle: h, Name: name},
		PersistentHandle: h,
	}).Execute(t)
	return err
}

// Open checks secret against the state's check object and returns a
// session.
func (b *Backend) Open(ctx context.Context, state, secret []byte) (backend.Session, error) {
	st, err := format.ParseState(state)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", backend.ErrState, err)
	}
	if st.PCRMask != b.pcrMask {
		return nil, fmt.Errorf("%w: the store is bound to PCRs %v but the backend is configured for %v; configure the same PCRs", backend.ErrState, st.PCRs(), format.MaskPCRs(b.pcrMask))
	}
	pol := pcrPolicy{mask: st.PCRMask, digest: st.PCRDigest}
	bind := st.Commitment()
	check := &format.Object{Kind: format.KindSealed, Public: st.CheckPublic, Private: st.CheckPrivate}
	// The check object's policy commits to every other state field: an
	// altered state is refused here, before the TPM counts a failure.
	if _, err := matchTemplate(check.Public, sealedTemplate(sealedPolicy(pol, bind))); err != nil {
		return nil, fmt.Errorf("%w: the state was altered (its check object does not match it): %v", backend.ErrState, err)
	}
	t, err := b.connect(ctx)
	if err != nil {
		return nil, err
	}
	s, err := b.open1(t, st, pol, bind, check, secret)
	if err != nil {
		t.Close()
		return nil, err
	}
	return s, nil
}

func (b *Backend) open1(t transport.TPMCloser, st *format.State, pol pcrPolicy, bind []byte, check *format.Object, secret []byte) (*session, error) {
	key, err := findStoreKey(t, st)
	if err != nil {
		return nil, err
	}
	sealAuth := deriveAuth(secret, st.Salt, infoSeal)
	got, err := unsealObject(t, key, pol, bind, sealAuth, check, backend.ErrState)
	if err != nil {
		clear(sealAuth)
		return nil, err
	}
	if !bytesEqual(got, checkValue) {
		clear(sealAuth)
		return nil, fmt.Errorf("%w: the check object unsealed to an unexpected value", backend.ErrState)
	}
	return &session{
		b:        b,
		t:        t,
		key:      key,
		pol:      pol,
		sealAuth: sealAuth,
		bindAuth: deriveAuth(secret, st.Salt, infoBind),
	}, nil
}

// Destroy evicts the store key from the TPM. Every object sealed or created
// under it — in this state and in any earlier copy — can no longer be
// loaded. It needs no secret, only the owner authorization. Destroying a
// store whose key is already gone succeeds.
func (b *Backend) Destroy(ctx context.Context, state []byte) error {
	st, err := format.ParseState(state)
	if err != nil {
		return fmt.Errorf("%w: %v", backend.ErrState, err)
	}
	t, err := b.connect(ctx)
	if err != nil {
		return err
	}
	defer t.Close()
	// The key is found by its Name, at the recorded handle or anywhere in
	// the owner's persistent range, so an altered handle in a copy of the
	// state cannot leave it behind.
	candidates := append([]tpm2.TPMHandle{tpm2.TPMHandle(st.Handle)}, listPersistent(t, format.MinPersistent, format.MaxPersistent-format.MinPersistent+1)...)
	for _, h := range candidates {
		rsp, err := (tpm2.ReadPublic{ObjectHandle: h}).Execute(t)
		if err != nil {
			if errors.Is(err, tpm2.TPMRCHandle) {
				continue
			}
			return tpmErr("reading a persistent object", err)
		}
		if !bytesEqual(format.Name(rsp.OutPublic.Bytes()), st.StoreName) {
			continue
		}
		if err := b.evict(t, h, tpm2.TPM2BName{Buffer: st.StoreName}); err != nil {
			return hierarchyErr("evicting the store key", err)
		}
		return nil
	}
	return nil // already destroyed
}
