// Package bridge is the boundary between Enigm's Go keystore and a phone's
// secure hardware: [Hardware], the interface an iOS app (Secure Enclave, through
// CryptoKit or SecKey) or an Android app (Android Keystore, StrongBox or
// TEE) implements natively, and that the Go adapter in backend/platform
// drives.
//
// # gomobile
//
// Everything this package exports can be bound with `gomobile bind`: only
// signed integers, bool, string, []byte, pointers to the structs below, the
// [Hardware] interface and error results appear in it (no maps, slices of
// structs, unsigned integers, channels or function values). A test checks
// this with go/types (mobile/gomobile_test.go).
//
// # Contract for implementations
//
//   - Keys are generated inside the hardware and never leave it: there is
//     no method that imports or exports private key material.
//   - A key is addressed by its alias (Android keystore alias; on iOS the
//     application tag of the Keychain item). Aliases are chosen by Go.
//   - Access control is fixed at generation ([KeySpec]) and enforced by the
//     hardware (or the OS component guarding it) at every use.
//   - Methods may block (an authentication prompt, a slow secure element)
//     and are called from a background thread; they must be safe for
//     concurrent use.
//   - A refusal is reported as an error whose message starts with
//     "enigm-bridge/<code>", code one of the Code constants: [CodeDeviceLocked],
//     [CodeAuthRequired], [CodeKeyInvalidated], [CodeKeyNotFound],
//     [CodeBadData], [CodeUnsupported], [CodeUnavailable]. Only the message
//     survives the language boundary, so the code is in the message; Go
//     implementations use [Refuse]. Any other error is treated as the
//     hardware being unavailable.
package bridge

// Security levels of a key or a platform, as Info and Key report them.
const (
	// LevelSecureEnclave: Apple Secure Enclave (kSecAttrTokenIDSecureEnclave).
	LevelSecureEnclave = "secure_enclave"
	// LevelStrongBox: an Android StrongBox KeyMint (a separate secure element).
	LevelStrongBox = "strongbox"
	// LevelTEE: an Android KeyMint in the trusted execution environment.
	LevelTEE = "tee"
	// LevelSoftware: keys in OS software only (no hardware boundary).
	LevelSoftware = "software"
)

// Key algorithms for KeySpec.Algorithm.
const (
	// AlgP256 is an EC key on NIST P-256 (ECDSA with SHA-256, ECDH).
	AlgP256 = "p256"
	// AlgAES256 is a 256-bit AES key used with GCM.
	AlgAES256 = "aes256"
)

// Kinds of user authentication, combined by bitwise OR in Info.UserAuth and
// KeySpec.Auth. A key whose Auth has both bits accepts either kind.
const (
	// AuthNone: the key needs no user authentication.
	AuthNone = 0
	// AuthBiometric: a strong biometric of the currently enrolled set (iOS
	// .biometryCurrentSet; Android AUTH_BIOMETRIC_STRONG with
	// setInvalidatedByBiometricEnrollment). Enrolling or removing a
	// biometric invalidates the key for good.
	AuthBiometric = 1
	// AuthDeviceCredential: the device passcode, PIN, pattern or password
	// (iOS .devicePasscode; Android AUTH_DEVICE_CREDENTIAL).
	AuthDeviceCredential = 2
)

// iOS data-protection classes for KeySpec.DataProtection (the Keychain
// accessibility of the key's item). Every class is "this device only": the
// item is never in a backup and never migrates to another device.
const (
	// ProtectionWhenUnlocked: usable only while the device is unlocked
	// (kSecAttrAccessibleWhenUnlockedThisDeviceOnly).
	ProtectionWhenUnlocked = "when_unlocked_this_device_only"
	// ProtectionAfterFirstUnlock: usable from the first unlock after boot,
	// also while locked (kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly).
	ProtectionAfterFirstUnlock = "after_first_unlock_this_device_only"
	// ProtectionWhenPasscodeSet: like WhenUnlocked, and the key is deleted
	// when the passcode is removed
	// (kSecAttrAccessibleWhenPasscodeSetThisDeviceOnly).
	ProtectionWhenPasscodeSet = "when_passcode_set_this_device_only"
)

// Attestation evidence types for Info.Attestation.
const (
	// AttestationAndroidKey: an Android key attestation certificate chain
	// (X.509 DER certificates concatenated, leaf first; the leaf carries the
	// KeyDescription extension 1.3.6.1.4.1.11129.2.1.17).
	AttestationAndroidKey = "android-key-attestation"
)

// Info describes what the platform's secure hardware can do. The Go
// adapter decides how to protect wrapping keys from these fields alone,
// never from Platform.
type Info struct {
	// Platform names the implementation ("ios", "android", a simulator);
	// informational only.
	Platform string
	// SecurityLevel of the keys GenerateKey makes: one of the Level
	// constants.
	SecurityLevel string
	// Sign: P-256 keys that sign SHA-256 digests (ECDSA).
	Sign bool
	// Agree: P-256 keys that compute ECDH shared secrets.
	Agree bool
	// AES: AES-256 keys that encrypt and decrypt with GCM.
	AES bool
	// UnlockedOnly: keys can be restricted to use while the device is
	// unlocked (iOS data protection class WhenUnlocked; Android
	// setUnlockedDeviceRequired).
	UnlockedOnly bool
	// UserAuth: the kinds of user authentication (Auth bits) keys can
	// require.
	UserAuth int
	// MaxAuthValiditySeconds: the longest validity window after an
	// authentication that keys can be given; 0 means only per-use
	// authentication.
	MaxAuthValiditySeconds int64
	// DataProtection: KeySpec.DataProtection is honoured (iOS).
	DataProtection bool
	// Attestation: the evidence type Attest returns; "" when the platform
	// cannot attest keys.
	Attestation string
}

// KeySpec is what GenerateKey creates.
type KeySpec struct {
	// Alias under which the key is stored; it must not exist yet.
	Alias string
	// Algorithm: AlgP256 or AlgAES256.
	Algorithm string
	// Purposes. A P-256 key may both sign and agree where the platform
	// allows it (Secure Enclave); an AES key encrypts (and decrypts).
	Sign    bool
	Agree   bool
	Encrypt bool
	// UnlockedOnly: the key is unusable while the device is locked.
	UnlockedOnly bool
	// Auth: user authentication kinds (Auth bits) the key requires; 0 for
	// none.
	Auth int
	// AuthValiditySeconds: with Auth set, how long after an
	// authentication the key may be used; 0 means every use needs its own
	// authentication.
	AuthValiditySeconds int64
	// DataProtection: the iOS data-protection class (Protection
	// constants); ignored where Info.DataProtection is false.
	DataProtection string
	// AttestationChallenge: where Info.Attestation is set and this is not
	// empty, the key is attested at generation over this challenge
	// (Android setAttestationChallenge); Attest returns that evidence.
	AttestationChallenge []byte
}

// Key describes a key in the hardware. It holds nothing secret.
type Key struct {
	Alias string
	// Algorithm: AlgP256 or AlgAES256.
	Algorithm string
	// SecurityLevel the key really has (Android may fall back from
	// StrongBox to TEE).
	SecurityLevel string
	// PublicKey: for P-256, the uncompressed point (65 bytes, 0x04 || X ||
	// Y); empty for AES.
	PublicKey []byte
}

// Hardware is the bridge: the app implements it, natively, over the
// platform's secure hardware. See the package documentation for the
// contract. (It is not called Bridge because gomobile names the Java class
// that holds this package's constants and functions bridge.Bridge.)
type Hardware interface {
	// Info reports the platform's capabilities. It must not prompt the
	// user or depend on the device's lock state.
	Info() (*Info, error)
	// GenerateKey creates a key inside the hardware as spec says.
	GenerateKey(spec *KeySpec) (*Key, error)
	// KeyInfo describes an existing key; CodeKeyNotFound if there is none.
	KeyInfo(alias string) (*Key, error)
	// Sign signs a 32-byte SHA-256 digest with a P-256 key and returns the
	// ASN.1 DER ECDSA signature.
	Sign(alias string, digest []byte) ([]byte, error)
	// Agree returns the 32-byte ECDH shared secret (the X coordinate)
	// between a P-256 key and peerPublic (uncompressed point).
	Agree(alias string, peerPublic []byte) ([]byte, error)
	// Encrypt encrypts with an AES-256 key in GCM mode with a 12-byte IV
	// the hardware draws, and aad as additional data. It returns IV (12)
	// || ciphertext || tag (16).
	Encrypt(alias string, plaintext, aad []byte) ([]byte, error)
	// Decrypt reverses Encrypt; CodeBadData when the tag does not verify.
	Decrypt(alias string, sealed, aad []byte) ([]byte, error)
	// Attest returns the attestation evidence (of type Info.Attestation)
	// made when the key was generated with an AttestationChallenge.
	Attest(alias string) ([]byte, error)
	// DeleteKey deletes a key for good. Deleting a missing key succeeds.
	DeleteKey(alias string) error
	// DeleteKeys deletes every key whose alias starts with prefix and
	// returns how many it deleted.
	DeleteKeys(prefix string) (int, error)
}
