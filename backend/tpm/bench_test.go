package tpm

import (
	"crypto"
	"testing"
)

// Benchmarks against the in-process simulator (Microsoft reference TPM):
// they measure the backend's command sequences and host-side cost, not a
// hardware TPM's speed. See docs/perf.md.

func BenchmarkProvision(b *testing.B) {
	be := newSim(b, Options{})
	for b.Loop() {
		st, err := be.Provision(ctx, secret)
		if err != nil {
			b.Fatal(err)
		}
		if err := be.Destroy(ctx, st); err != nil {
			b.Fatal(err)
		}
	}
}

func benchOpen(b *testing.B, opts Options) {
	be := newSim(b, opts)
	st, err := be.Provision(ctx, secret)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := be.Open(ctx, st, secret)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// Open is the unlock: read and check the store key, unseal the check object.
func BenchmarkOpen(b *testing.B)    { benchOpen(b, Options{}) }
func BenchmarkOpenPCR(b *testing.B) { benchOpen(b, Options{PCRs: []int{0, 7}}) }

func BenchmarkSeal(b *testing.B) {
	be := newSim(b, Options{})
	st, _ := be.Provision(ctx, secret)
	s, err := be.Open(ctx, st, secret)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, err := s.Seal(ctx, "enigm/v1/kek/identity", key32); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnseal(b *testing.B) {
	be := newSim(b, Options{})
	st, _ := be.Provision(ctx, secret)
	s, err := be.Open(ctx, st, secret)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sealed, err := s.Seal(ctx, "enigm/v1/kek/identity", key32)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Unseal(ctx, "enigm/v1/kek/identity", sealed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBindingSign(b *testing.B) {
	be := newSim(b, Options{})
	st, _ := be.Provision(ctx, secret)
	s, err := be.Open(ctx, st, secret)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	_, key, err := s.(*session).CreateBindingKey(ctx)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256Sum([]byte("bind"))
	for b.Loop() {
		if _, err := key.Sign(nil, digest, crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAttest(b *testing.B) {
	be := newSim(b, Options{})
	st, _ := be.Provision(ctx, secret)
	s, err := be.Open(ctx, st, secret)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	blob, _, err := s.(*session).CreateBindingKey(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := sha256Sum([]byte("nonce"))
	for b.Loop() {
		if _, err := s.(*session).Attest(ctx, blob, n); err != nil {
			b.Fatal(err)
		}
	}
}
