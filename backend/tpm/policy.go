package tpm

import (
	"crypto/sha256"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Sealed objects carry this policy (TPM 2.0 Part 1, 19.7):
//
//	base   = [PolicyPCR(selection, digest)] · PolicyAuthValue · PolicyCommandCode(Unseal)
//	policy = PolicyOR(base, bind)
//
// PolicyAuthValue makes the TPM check the auth value derived from the unlock
// secret (with dictionary-attack counting); PolicyPCR, when the store has a
// PCR selection, requires the measured boot state recorded at provisioning.
//
// bind is never reachable as a session digest (that would need a SHA-256
// preimage), so the OR adds no way in; it only commits the object's public
// area to bind: the label digest for sealed data, the state commitment for
// the check object. A blob unsealed under another label, or a check object
// paired with an altered state, has a policy that does not match, which is
// detected before any dictionary-attack-counted command is sent.

// pcrPolicy is a store's boot-state binding: no PCRs when mask is zero.
type pcrPolicy struct {
	mask   uint32
	digest []byte
}

func (p pcrPolicy) selection() tpm2.TPMLPCRSelection { return pcrSelection(p.mask) }

func pcrSelection(mask uint32) tpm2.TPMLPCRSelection {
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: []byte{byte(mask), byte(mask >> 8), byte(mask >> 16)},
	}}}
}

// labelBind is the policy commitment of a Seal label.
func labelBind(label string) []byte {
	h := sha256.New()
	h.Write([]byte("enigm/v1/tpm/seal-label\x00"))
	h.Write([]byte(label))
	return h.Sum(nil)
}

// sealedPolicy computes the authPolicy of a sealed object bound to bind.
func sealedPolicy(p pcrPolicy, bind []byte) []byte {
	_, final := policyDigests(p, bind)
	return final
}

// policyDigests computes the base digest and the final policy. Errors
// cannot occur for these fixed commands; a nil result never matches.
func policyDigests(p pcrPolicy, bind []byte) (base, final []byte) {
	calc, err := tpm2.NewPolicyCalculator(tpm2.TPMAlgSHA256)
	if err != nil {
		return nil, nil
	}
	if p.mask != 0 {
		if err := (tpm2.PolicyPCR{PcrDigest: tpm2.TPM2BDigest{Buffer: p.digest}, Pcrs: p.selection()}).Update(calc); err != nil {
			return nil, nil
		}
	}
	if err := (tpm2.PolicyAuthValue{}).Update(calc); err != nil {
		return nil, nil
	}
	if err := (tpm2.PolicyCommandCode{Code: tpm2.TPMCCUnseal}).Update(calc); err != nil {
		return nil, nil
	}
	base = calc.Hash().Digest
	if err := orOf(base, bind).Update(calc); err != nil {
		return nil, nil
	}
	return base, calc.Hash().Digest
}

func orOf(base, bind []byte) tpm2.PolicyOr {
	return tpm2.PolicyOr{PHashList: tpm2.TPMLDigest{Digests: []tpm2.TPM2BDigest{{Buffer: base}, {Buffer: bind}}}}
}

// runSealedPolicy satisfies sealedPolicy(p, bind) in a policy session.
func runSealedPolicy(p pcrPolicy, bind []byte) tpm2.PolicyCallback {
	base, _ := policyDigests(p, bind)
	return func(t transport.TPM, h tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
		if p.mask != 0 {
			// With the expected digest given, the TPM refuses with
			// TPM_RC_VALUE when the PCRs differ: a clear boot-state error.
			if _, err := (tpm2.PolicyPCR{PolicySession: h, PcrDigest: tpm2.TPM2BDigest{Buffer: p.digest}, Pcrs: p.selection()}).Execute(t); err != nil {
				return &policyPCRError{err}
			}
		}
		if _, err := (tpm2.PolicyAuthValue{PolicySession: h}).Execute(t); err != nil {
			return err
		}
		if _, err := (tpm2.PolicyCommandCode{PolicySession: h, Code: tpm2.TPMCCUnseal}).Execute(t); err != nil {
			return err
		}
		// The session digest now equals base; PolicyOR moves it to the
		// object's policy.
		or := orOf(base, bind)
		or.PolicySession = h
		_, err := or.Execute(t)
		return err
	}
}

// policyPCRError marks a PolicyPCR failure.
type policyPCRError struct{ err error }

func (e *policyPCRError) Error() string { return "PolicyPCR: " + e.err.Error() }
func (e *policyPCRError) Unwrap() error { return e.err }
