package chain

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/asn1"
	"math/big"
	"testing"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

// checkGenuine is FuzzApply's oracle for an accepted link: every signature
// in it must be one an honest key of the test world made. The world signs
// deterministically (deterministic ML-DSA-65, Ed25519, RFC 6979 ECDSA with
// low s), and all three schemes are strongly unforgeable as the chain
// verifies them, so a genuine signature is exactly the bytes the private
// key of one of the keys the states hold gives again over the same message
// and context. It does not call hybrid.Verify or Apply's checks: a verifier
// that ignored one half of a hybrid signature, a context or a role lets the
// fuzzer's altered signatures through, and this catches them.
func checkGenuine(t *testing.T, st, ns *State, l *Link) {
	t.Helper()
	var ids []*hybrid.PublicKey
	var bindings []*ecdsa.PublicKey
	for _, s := range []*State{st, ns} {
		recs := s.Devices()
		if p, ok := s.PendingRecovery(); ok {
			recs = append(recs, DeviceRecord{Device: p.Device})
		}
		for _, r := range recs {
			ids = append(ids, r.Identity)
			if r.Binding != nil {
				bindings = append(bindings, r.Binding)
			}
		}
		ids = append(ids, s.RecoveryKey())
		if o, ok := s.Org(); ok {
			ids = append(ids, o.AdminKey)
		}
	}
	priv := map[[32]byte]detKey{}
	bpriv := map[string]*ecdsa.PrivateKey{}
	keys.Each(func(k any) {
		switch k := k.(type) {
		case *hybrid.PrivateKey:
			priv[k.Public().Fingerprint()] = detKey{k}
		case *ecdsa.PrivateKey:
			kb, _ := k.PublicKey.Bytes()
			bpriv[string(kb)] = k
		}
	})
	for _, s := range l.Signatures() {
		if s.Role == RoleBinding {
			if !genuineBinding(l, s.Sig, bindings, bpriv) {
				t.Fatalf("accepted %s link carries a binding signature no binding key of the state made", l.Type())
			}
			continue
		}
		ctx, msg := SigningContext(l.Type(), s.Role), l.Payload()
		if s.Approval != nil {
			ctx, msg = ApprovalContext(l.Type(), s.Role), testkit.Must(wire.Marshal(s.Approval.wire()))
		}
		genuine := false
		for _, pk := range ids {
			k, ok := priv[pk.Fingerprint()]
			if !ok {
				continue
			}
			if sig, err := k.Sign(ctx, msg); err == nil && bytes.Equal(sig.Bytes(), s.Sig) {
				genuine = true
				break
			}
		}
		if !genuine {
			t.Fatalf("accepted %s link carries a %s signature that no key of the state made over that message", l.Type(), s.Role)
		}
	}
}

func genuineBinding(l *Link, sig []byte, pubs []*ecdsa.PublicKey, priv map[string]*ecdsa.PrivateKey) bool {
	for _, pub := range pubs {
		kb, _ := pub.Bytes()
		k, ok := priv[string(kb)]
		if !ok {
			continue
		}
		digest := testkit.Must(bindingDigest(SigningContext(l.Type(), RoleBinding), pub, l.Payload()))
		der := testkit.Must(k.Sign(nil, digest[:], crypto.SHA256))
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			panic(err)
		}
		if rs.S.Cmp(halfOrder) > 0 {
			rs.S.Sub(elliptic.P256().Params().N, rs.S)
		}
		want := make([]byte, BindingSigSize)
		rs.R.FillBytes(want[:32])
		rs.S.FillBytes(want[32:])
		if bytes.Equal(want, sig) {
			return true
		}
	}
	return false
}
