// Package keystoretest holds the keystore's cross-backend tests and
// benchmarks: the same keystore-level checks (generation, wrap/unwrap
// integrity, non-exportability, lock/unlock, gates the hardware reports
// really being enforced, destruction on revocation, and zero backend calls
// per signature after unlock) run over every backend: soft, the TPM 2.0
// simulator, PKCS#11 on every token setup of backend/pkcs11/pkcs11test
// (SoftHSM2 full, without GCM and EC-only; openCryptoki's soft token), and
// the simulated Secure Enclave and StrongBox behind the platform bridge.
// Each backend unlocks with a secret its rules accept (a token's PIN on
// PKCS#11). With ENIGM_REQUIRE_ALL=1 a missing TPM simulator or token
// setup fails the tests instead of skipping them.
//
// The package has no code outside its tests.
package keystoretest
