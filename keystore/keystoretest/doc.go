// Package keystoretest holds the keystore's cross-backend tests and
// benchmarks: the same keystore-level checks (generation, wrap/unwrap
// integrity, non-exportability, lock/unlock, gates the hardware reports
// really being enforced, destruction on revocation, and zero backend calls
// per signature after unlock) run over every backend: soft, the TPM 2.0
// simulator, SoftHSM2 (PKCS#11), and the simulated Secure Enclave and
// StrongBox behind the platform bridge. With ENIGM_REQUIRE_ALL=1 a missing
// TPM simulator or SoftHSM2 fails the tests instead of skipping them.
//
// The package has no code outside its tests.
package keystoretest
