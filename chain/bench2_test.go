package chain

import "testing"

func BenchmarkParts(b *testing.B) {
	w := newWorld("bench").script("genesis A")
	raw := w.addLink(w.actor("B"), w.actor("A"), false).Bytes()
	l := must(ParseLink(raw))
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			ParseLink(raw)
		}
	})
	b.Run("apply", func(b *testing.B) {
		for b.Loop() {
			Apply(w.st, l, w.now)
		}
	})
	b.Run("kem", func(b *testing.B) {
		k := w.actor("B").kem().Bytes()
		for b.Loop() {
			checkKEMKey(k)
		}
	})
	b.Run("devhash", func(b *testing.B) {
		for b.Loop() {
			BodyHash(l.bodyRaw)
		}
	})
}
