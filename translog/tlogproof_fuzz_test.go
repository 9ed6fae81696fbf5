package translog_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/enigm/enigm/translog"
)

// FuzzParseProof: a tlog-proof that parses is the proof its fields give
// back, byte for byte (no second spelling of one proof), and never
// panics. Seeds: the golden proofs (testdata/tlogproof) and the files in
// testdata/fuzz/FuzzParseProof.
func FuzzParseProof(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "tlogproof", "*.tlog-proof"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := translog.ParseProof(b)
		if err != nil {
			return
		}
		back, err := p.Bytes()
		if err != nil {
			t.Fatalf("%q parses, but its proof does not format: %v", b, err)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("%q parses to a proof spelled %q", b, back)
		}
	})
}

// FuzzVerifyProof: whatever bytes verify for leaf 617 of the golden log
// under its keys say index 617 in a tree that holds it (a path cannot
// place a leaf elsewhere; a proof against an older checkpoint of the same
// log, such as the committed seeds made before checkpoints ended in a map
// leaf, is still a proof of 617), and nothing panics.
func FuzzVerifyProof(f *testing.F) {
	g := newGoldenWorld(f)
	good := g.proof(f, 617, nil, g.w1, g.w2)
	b := mustBytes(f, good)
	f.Add(b)
	f.Add(mustBytes(f, g.proof(f, 616, nil)))
	f.Add(bytes.Replace(b, []byte("index 617"), []byte("index 618"), 1))
	keys := g.signer.VerifierKeys()
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := translog.ParseProof(b)
		if err != nil {
			return
		}
		v, err := p.Verify(leaf(617), goldenOrigin, keys, g.quorum(1))
		if err == nil && (v.Index != 617 || v.Checkpoint.Size <= 617) {
			t.Fatalf("leaf 617 verified at index %d of %d leaves:\n%s", v.Index, v.Checkpoint.Size, b)
		}
	})
}
