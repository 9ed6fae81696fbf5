package chain

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

// Fuzz targets: one per decoder (ParseLink, the body decoders,
// ParseRecoveryCode) and one for Apply. Seed corpora are committed under
// testdata/fuzz/<target>/ and run with every go test; regenerate them with
// go test ./chain -run TestFuzzSeeds -update. Fuzz with e.g.
//
//	go test ./chain -run '^$' -fuzz FuzzParseLink -fuzztime 60s

// reencode builds a link's encoding again from its parsed form. A decoder
// that accepted input whose re-encoding differs would let two byte strings
// stand for one link.
func reencode(l *Link) ([]byte, error) {
	wb, err := l.body.encode()
	if err != nil {
		return nil, err
	}
	body, err := wire.Marshal(wb)
	if err != nil {
		return nil, err
	}
	w := wLink{Version: linkVersion, Seq: l.seq, Time: uint64(l.time), Type: uint64(l.typ), Body: body, Sigs: encodeSigs(l.sigs)}
	if l.typ != TypeGenesis {
		w.Account, w.Prev = l.account[:], l.prev[:]
	}
	return wire.Marshal(&w)
}

func FuzzParseLink(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLink(b)
		if err != nil {
			return
		}
		again, err := reencode(l)
		if err != nil {
			t.Fatalf("accepted link does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted link re-encodes differently:\n in %x\nout %x", b, again)
		}
		if l.Hash() != domainHash(prefixLink, b) {
			t.Fatal("hash is not over the input bytes")
		}
		var w wLink
		testkit.NoErr(t, wire.Unmarshal(b, &w, 0))
		w.Sigs = nil
		if p, err := wire.Marshal(&w); err != nil || !bytes.Equal(p, l.Payload()) {
			t.Fatal("payload is not the encoding of the link without its signatures")
		}
	})
}

func FuzzDecodeBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ uint8, b []byte) {
		body, err := decodeBody(LinkType(typ), b)
		if err != nil {
			return
		}
		if body.Type() != LinkType(typ) {
			t.Fatalf("decoded %s body for type %d", body.Type(), typ)
		}
		wb, err := body.encode()
		if err != nil {
			t.Fatalf("accepted body does not re-encode: %v", err)
		}
		if again, err := wire.Marshal(wb); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted body re-encodes differently (%v)", err)
		}
	})
}

func FuzzParseRecoveryCode(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseRecoveryCode(s)
		if err != nil {
			return
		}
		c2, err := ParseRecoveryCode(c.Reveal())
		if err != nil || c2.data != c.data {
			t.Fatalf("accepted code does not round-trip through Reveal: %v", err)
		}
		if !utf8.ValidString(c.Reveal()) {
			t.Fatal("Reveal is not text")
		}
	})
}

// fuzzState is the fixed state FuzzApply applies links to: a managed
// account with devices A and B (B on hardware) and a pending recovery.
var fuzzState = sync.OnceValues(func() (*world, time.Time) {
	w := newWorld("fuzz").script("genesis A managed delay=0s; add B by A hw; request R")
	return w, w.now
})

func FuzzApply(f *testing.F) {
	w, now := fuzzState()
	st := w.st
	fuzzSeeds() // derives every honest key the seeds use, for checkGenuine
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLink(b)
		if err != nil {
			return
		}
		ns, err := Apply(st, l, now)
		if err != nil {
			if ns != nil {
				t.Fatal("Apply returned a state with an error")
			}
			return
		}
		if again, err := reencode(l); err != nil || !bytes.Equal(again, b) {
			t.Fatal("Apply accepted a link that does not re-encode identically")
		}
		if ns.Head() != (Head{Seq: st.Head().Seq + 1, Hash: l.Hash()}) {
			t.Fatal("accepted link is not the new head")
		}
		if st.Head().Seq != 2 || st.ActiveCount() != 2 {
			t.Fatal("Apply changed its input state")
		}
		checkGenuine(t, st, ns, l)
	})
}

// fuzzSeeds returns the seed inputs of each target.
func fuzzSeeds() map[string][][]any {
	w, _ := fuzzState()
	// One valid next link of every type the state allows.
	next := []*Link{
		w.addLink(w.actor("C"), w.actor("A"), false),
		w.revokeLink(w.actor("B"), RoleOrg, nil),
		w.rotateLink(w.actor("B"), true, true),
		w.replaceLink(w.actor("A"), w.actor("D"), false),
		w.vetoLink(w.actor("A")),
		w.recoverLink(w.actor("R"), false),
		w.rotateRecoveryLink(w.actor("A")),
		w.policyLink(Policy{RecoveryDelay: time.Hour, MinLevel: LevelSoftware}, w.org()),
	}
	all := append(append([]*Link(nil), w.links...), next...)
	seeds := map[string][][]any{}
	for _, l := range all {
		seeds["FuzzParseLink"] = append(seeds["FuzzParseLink"], []any{l.raw})
		var wl wLink
		check(wire.Unmarshal(l.raw, &wl, 0))
		seeds["FuzzDecodeBody"] = append(seeds["FuzzDecodeBody"], []any{uint8(l.typ), wl.Body})
	}
	for _, l := range next {
		seeds["FuzzApply"] = append(seeds["FuzzApply"], []any{l.raw})
	}
	// The add_device with one byte of one half of the approving signature
	// changed (Ed25519 R, then ML-DSA-65): Apply must refuse both, and a
	// verifier that ignored that half would accept it, which checkGenuine
	// reports.
	for _, off := range []int{3, 64 + 100} {
		seeds["FuzzApply"] = append(seeds["FuzzApply"], []any{rewrite(next[0], func(x *wLink) {
			for i := range x.Sigs {
				if x.Sigs[i].Role == uint64(RoleDevice) {
					x.Sigs[i].Sig[off] ^= 1
				}
			}
		})})
	}
	good := next[0].raw
	for _, b := range [][]byte{dupKey(good), nonMinimal(good), indefinite(good), unknownField(good), {0xa0}, nested(12)} {
		seeds["FuzzParseLink"] = append(seeds["FuzzParseLink"], []any{b})
	}
	c := &RecoveryCode{}
	for i := range c.data {
		c.data[i] = byte(i)
	}
	for _, s := range []string{c.Reveal(), "0123-4567", "", "oil-OIL-ÿ"} {
		seeds["FuzzParseRecoveryCode"] = append(seeds["FuzzParseRecoveryCode"], []any{s})
	}
	// A set_policy with the organisation's witness policy (keys 6 and 7),
	// after the older seeds so that their files keep their names.
	wp := w.policyLink(Policy{RecoveryDelay: time.Hour, WitnessPolicy: goldenWitnessPolicy, WitnessMaxAge: time.Hour}, w.org())
	var wl wLink
	check(wire.Unmarshal(wp.raw, &wl, 0))
	seeds["FuzzParseLink"] = append(seeds["FuzzParseLink"], []any{wp.raw})
	seeds["FuzzDecodeBody"] = append(seeds["FuzzDecodeBody"], []any{uint8(wp.typ), wl.Body})
	seeds["FuzzApply"] = append(seeds["FuzzApply"], []any{wp.raw})
	return seeds
}

// corpusFile renders one seed in the go test fuzz v1 format.
func corpusFile(args []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case uint8:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		}
	}
	return b.Bytes()
}

// TestFuzzSeeds checks that the committed seed corpora are the generated
// ones (so they stay valid as the format evolves).
func TestFuzzSeeds(t *testing.T) {
	for target, list := range fuzzSeeds() {
		dir := filepath.Join("testdata", "fuzz", target)
		if *update {
			check(os.RemoveAll(dir))
			check(os.MkdirAll(dir, 0o755))
		}
		for i, args := range list {
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			want := corpusFile(args)
			if *update {
				check(os.WriteFile(path, want, 0o644))
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is missing or stale: regenerate with go test ./chain -run TestFuzzSeeds -update", path)
			}
		}
	}
}
