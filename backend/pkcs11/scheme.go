//go:build cgo

package pkcs11

import (
	"fmt"
	"strings"

	p11 "github.com/miekg/pkcs11"

	"github.com/enigm/enigm/backend"
)

type mechanism struct {
	id   uint
	name string
}

var (
	mAESKeyGen    = mechanism{p11.CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"}
	mAESGCM       = mechanism{p11.CKM_AES_GCM, "CKM_AES_GCM"}
	mAESCBCPad    = mechanism{p11.CKM_AES_CBC_PAD, "CKM_AES_CBC_PAD"}
	mGenericGen   = mechanism{p11.CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN"}
	mSHA256HMAC   = mechanism{p11.CKM_SHA256_HMAC, "CKM_SHA256_HMAC"}
	mECKeyPairGen = mechanism{p11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"}
	mECDSA        = mechanism{p11.CKM_ECDSA, "CKM_ECDSA"}
	mECDH         = mechanism{p11.CKM_ECDH1_DERIVE, "CKM_ECDH1_DERIVE"}
)

// scheme is a protection scheme and the mechanisms it needs.
type scheme struct {
	id   uint8
	name string
	need []mechanism
}

// schemes in the order Provision tries them.
var schemes = []scheme{
	{schemeGCM2, SchemeAESGCM, []mechanism{mAESKeyGen, mAESGCM}},
	{schemeCBCHMAC, SchemeAESCBCHMAC, []mechanism{mAESKeyGen, mAESCBCPad, mGenericGen, mSHA256HMAC}},
	{schemeECDH, SchemeP256ECDH, []mechanism{mECKeyPairGen, mECDH}},
}

// bindingNeed are the mechanisms of binding keys (optional: a token
// without them hosts a store with no hardware binding key).
var bindingNeed = []mechanism{mECKeyPairGen, mECDSA}

func schemeByID(id uint8) scheme {
	for _, s := range schemes {
		if s.id == id {
			return s
		}
	}
	return scheme{}
}

func missing(have map[uint]bool, need []mechanism) []string {
	var out []string
	for _, m := range need {
		if !have[m.id] {
			out = append(out, m.name)
		}
	}
	return out
}

func mechSet(ms []*p11.Mechanism) map[uint]bool {
	have := make(map[uint]bool, len(ms))
	for _, m := range ms {
		if m != nil {
			have[m.Mechanism] = true
		}
	}
	return have
}

// candidates returns the schemes the token can host, in order (only want,
// if set). Otherwise the error lists every missing mechanism of every
// scheme at once, and which schemes would work.
func candidates(token string, have map[uint]bool, want string) ([]scheme, error) {
	var ok []scheme
	var lacks []string
	for _, s := range schemes {
		if m := missing(have, s.need); len(m) != 0 {
			lacks = append(lacks, fmt.Sprintf("%s lacks %s", s.name, strings.Join(m, ", ")))
		} else {
			ok = append(ok, s)
		}
	}
	if want == "" {
		if len(ok) == 0 {
			return nil, fmt.Errorf("%w: token %q offers none of the protection schemes: %s", ErrMechanisms, token, strings.Join(lacks, "; "))
		}
		return ok, nil
	}
	for _, s := range schemes {
		if s.name != want {
			continue
		}
		if m := missing(have, s.need); len(m) != 0 {
			return nil, fmt.Errorf("%w: token %q cannot host scheme %s: it lacks %s; schemes it can host: %s", ErrMechanisms, token, want, strings.Join(m, ", "), names(ok))
		}
		return []scheme{s}, nil
	}
	return nil, fmt.Errorf("pkcs11: unknown protection scheme %q (known: %s, %s, %s)", want, SchemeAESGCM, SchemeAESCBCHMAC, SchemeP256ECDH)
}

func withoutGate(gs []backend.Gate, g backend.Gate) []backend.Gate {
	var out []backend.Gate
	for _, x := range gs {
		if x != g {
			out = append(out, x)
		}
	}
	return out
}

func names(ss []scheme) string {
	if len(ss) == 0 {
		return "none"
	}
	var n []string
	for _, s := range ss {
		n = append(n, s.name)
	}
	return strings.Join(n, ", ")
}

// capsFor reports what a store of the scheme on a token with (ecdsa) or
// without binding-key mechanisms has.
func capsFor(id uint8, ecdsa bool) backend.Capabilities {
	c := capabilities()
	c.Resident = nil
	if ecdsa {
		c.Resident = append(c.Resident, backend.AlgP256)
	}
	if id == schemeGCM2 || id == schemeCBCHMAC {
		c.Resident = append(c.Resident, backend.AlgAES256)
	}
	return c
}
