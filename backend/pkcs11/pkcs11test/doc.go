// Package pkcs11test sets up the PKCS#11 tokens the tests run on, for
// backend/pkcs11's own tests and the keystore suite (keystore/keystoretest):
//
//   - softhsm2-full: SoftHSM2 with its whole mechanism list;
//   - softhsm2-no-gcm: SoftHSM2 with CKM_AES_GCM removed through
//     slots.mechanisms, like an HSM or card without GCM;
//   - softhsm2-ec-only: SoftHSM2 offering only CKM_EC_KEY_PAIR_GEN,
//     CKM_ECDSA and CKM_ECDH1_DERIVE, like a PIV token (YubiKey through
//     ykcs11, OpenSC's PIV driver);
//   - softhsm2-ec-adopted: the EC-only module with, on every token, a
//     P-256 key pair that OpenSC's pkcs11-tool made with CKA_ID 03 (how a
//     PIV key is made with the vendor's tool), which the backend adopts
//     (Options.AdoptKeyID) instead of generating keys;
//   - opencryptoki: openCryptoki's soft token (no GCM, no EC, PINs of 4 to
//     8 bytes), reached through its slot daemon pkcsslotd. scripts/test.sh
//     installs it, starts the daemon, initializes the token with pkcsconf
//     and exports ENIGM_TEST_OPENCRYPTOKI_{MODULE,LABEL,PIN}.
//
// SoftHSM2 reads SOFTHSM2_CONF once per loaded module, in C_Initialize, so
// [Start] runs before any module is loaded: each restricted setup loads its
// own copy of libsofthsm2.so (a distinct path is a distinct module to the
// dynamic loader) with its own configuration and token directory, and the
// full setup loads the installed library last. No system token is touched:
// SoftHSM2 tokens live in a throwaway directory and each test initializes
// its own ([Setup.Token]); openCryptoki has one token, which scripts/test.sh
// initialized for the tests.
//
// The package is test support: only _test.go files import it
// (internal/archtest's TestPKCS11TestOnlyInTests checks), so nothing here
// reaches a binary. It needs cgo; without cgo it is empty.
package pkcs11test
