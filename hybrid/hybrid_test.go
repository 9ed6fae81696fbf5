package hybrid

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func testKey(t testing.TB, b byte) *PrivateKey {
	t.Helper()
	seed := bytes.Repeat([]byte{b}, SeedSize)
	k, err := NewPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerify(t *testing.T) {
	k := testKey(t, 1)
	ctx, err := Context("add_device")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello")
	sig, err := k.Sign(ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(k.Public(), ctx, msg, sig); err != nil {
		t.Fatalf("valid signature rejected: %v", err)
	}
	parsed, err := ParseSignature(sig.Bytes())
	if err != nil || !parsed.Equal(sig) {
		t.Fatalf("signature round trip: %v", err)
	}
	pk, err := ParsePublicKey(k.Public().Bytes())
	if err != nil || !pk.Equal(k.Public()) {
		t.Fatalf("public key round trip: %v", err)
	}
	if err := Verify(pk, ctx, msg, parsed); err != nil {
		t.Fatalf("parsed signature rejected: %v", err)
	}
}

func TestRejects(t *testing.T) {
	a, b := testKey(t, 1), testKey(t, 2)
	ctx, _ := Context("approval")
	msg := []byte("m")
	sig, _ := a.Sign(ctx, msg)
	sigB, _ := b.Sign(ctx, msg)
	otherCtx, _ := Context("revoke_device")

	flip := func(s []byte, i int) []byte { c := bytes.Clone(s); c[i] ^= 1; return c }
	// A hybrid key built from a's Ed25519 half and b's ML-DSA half.
	mixed, err := NewPublicKey(a.Public().Ed25519(), b.Public().MLDSA())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc string
		pk   *PublicKey
		ctx  string
		msg  []byte
		sig  *Signature
		want error
	}{
		{"wrong key", b.Public(), ctx, msg, sig, ErrInvalidSignature},
		{"wrong context", a.Public(), otherCtx, msg, sig, ErrInvalidSignature},
		{"wrong message", a.Public(), ctx, []byte("n"), sig, ErrInvalidSignature},
		{"ed25519 half flipped", a.Public(), ctx, msg, &Signature{flip(sig.Ed25519, 3), sig.MLDSA}, ErrInvalidSignature},
		{"mldsa half flipped", a.Public(), ctx, msg, &Signature{sig.Ed25519, flip(sig.MLDSA, 100)}, ErrInvalidSignature},
		{"mldsa half missing", a.Public(), ctx, msg, &Signature{Ed25519: sig.Ed25519}, ErrMissingPQ},
		{"halves from two signers", a.Public(), ctx, msg, &Signature{sig.Ed25519, sigB.MLDSA}, ErrInvalidSignature},
		{"recombined key", mixed, ctx, msg, &Signature{sig.Ed25519, sigB.MLDSA}, ErrInvalidSignature},
		{"empty context", a.Public(), "", msg, sig, ErrContext},
		{"nil signature", a.Public(), ctx, msg, nil, ErrInvalidSignature},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			err := Verify(c.pk, c.ctx, c.msg, c.sig)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
		})
	}
}

func TestSignDeterministic(t *testing.T) {
	k := testKey(t, 7)
	ctx, _ := Context("det")
	s1, err := k.SignDeterministic(ctx, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := k.SignDeterministic(ctx, []byte("m"))
	if !s1.Equal(s2) {
		t.Fatal("deterministic signatures differ")
	}
	if err := Verify(k.Public(), ctx, []byte("m"), s1); err != nil {
		t.Fatalf("deterministic signature rejected: %v", err)
	}
	r, _ := k.Sign(ctx, []byte("m"))
	if r.Equal(s1) {
		t.Fatal("hedged signature equals the deterministic one")
	}
}

func TestParseRejects(t *testing.T) {
	k := testKey(t, 3)
	if _, err := ParsePublicKey(k.Public().Ed25519()); !errors.Is(err, ErrMissingPQ) {
		t.Errorf("Ed25519-only key: %v", err)
	}
	if _, err := NewPublicKey(k.Public().Ed25519(), nil); !errors.Is(err, ErrMissingPQ) {
		t.Errorf("NewPublicKey without PQ: %v", err)
	}
	if _, err := ParsePublicKey(k.Public().Bytes()[:100]); !errors.Is(err, ErrMalformed) {
		t.Errorf("short key: %v", err)
	}
	if _, err := ParseSignature(make([]byte, 64)); !errors.Is(err, ErrMissingPQ) {
		t.Errorf("Ed25519-only signature: %v", err)
	}
	if _, err := ParseSignature(make([]byte, 10)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short signature: %v", err)
	}
	if _, err := NewPrivateKey(make([]byte, 32)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short seed: %v", err)
	}
}

func TestContext(t *testing.T) {
	if c, err := Context("add_device"); err != nil || c != "enigm/v1/add_device" {
		t.Fatalf("Context = %q, %v", c, err)
	}
	for _, bad := range []string{"", "Add", "a b", strings.Repeat("a", 65), "x\x00"} {
		if _, err := Context(bad); !errors.Is(err, ErrContext) {
			t.Errorf("Context(%q) = %v, want ErrContext", bad, err)
		}
	}
}

// The message layout is part of the wire format: pin it.
func TestMessageLayout(t *testing.T) {
	k := testKey(t, 4)
	h := k.Public().Fingerprint()
	m, err := message("enigm/v1/x", &h, []byte("msg"))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("enigm-hybrid-v1\x00\x0aenigm/v1/x"), h[:]...)
	want = append(want, "msg"...)
	if !bytes.Equal(m, want) {
		t.Fatalf("message layout changed:\n got %x\nwant %x", m, want)
	}
	if h != sha256.Sum256(k.Public().Bytes()) {
		t.Fatal("fingerprint is not SHA-256 of the encoding")
	}
}

func TestNoSecretInFormat(t *testing.T) {
	k := testKey(t, 5)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		out := fmt.Sprintf(verb, k)
		if !strings.HasPrefix(out, "hybrid private key for hybrid-ed25519-mldsa65:") {
			t.Errorf("%s printed %q", verb, out)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	k := testKey(b, 6)
	msg := make([]byte, 256)
	for b.Loop() {
		if _, err := k.Sign("enigm/v1/bench", msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	k := testKey(b, 6)
	msg := make([]byte, 256)
	sig, _ := k.Sign("enigm/v1/bench", msg)
	for b.Loop() {
		if err := Verify(k.Public(), "enigm/v1/bench", msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}
