package translog_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/mldsa"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/enigm/enigm/translog"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden tlog-proof files in testdata/tlogproof")

// seeded returns a 32-byte seed derived from a label, for keys that are
// the same in every run (the golden files are verified with them).
func seeded(label string) []byte {
	h := sha256.Sum256([]byte("enigm tlog-proof test key " + label))
	return h[:]
}

// detMLDSA signs deterministically (FIPS 204's deterministic variant), so
// that the golden files come out the same in every run.
type detMLDSA struct{ *mldsa.PrivateKey }

func (k detMLDSA) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignDeterministic(msg, opts)
}

// proofSigner is the golden log's signer: Ed25519 and ML-DSA-44 keys
// derived from labels, signing deterministically.
func proofSigner(t testing.TB, origin, label string) *translog.Signer {
	t.Helper()
	pq, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), seeded(label+"/ml-dsa-44"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := translog.NewSigner(origin, ed25519.NewKeyFromSeed(seeded(label+"/ed25519")), detMLDSA{pq})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// cosigner is a test witness: it appends tlog-cosignature lines (Ed25519
// cosignature/v1, type 0x04, or ML-DSA-44 subtree/v1, type 0x06) to a
// signed checkpoint, built here from the spec independently of package
// translog's verifiers.
type cosigner struct {
	name string
	ed   ed25519.PrivateKey // nil for an ML-DSA-44 witness
	pq   *mldsa.PrivateKey
}

func newCosigner(t testing.TB, name string, pq bool) *cosigner {
	c := &cosigner{name: name}
	if !pq {
		c.ed = ed25519.NewKeyFromSeed(seeded(name))
		return c
	}
	k, err := mldsa.NewPrivateKey(mldsa.MLDSA44(), seeded(name))
	if err != nil {
		t.Fatal(err)
	}
	c.pq = k
	return c
}

func (c *cosigner) typ() byte {
	if c.ed != nil {
		return 0x04
	}
	return 0x06
}

func (c *cosigner) pub() []byte {
	if c.ed != nil {
		return c.ed.Public().(ed25519.PublicKey)
	}
	return c.pq.PublicKey().Bytes()
}

func (c *cosigner) id() uint32 {
	h := sha256.Sum256(append(append([]byte(c.name+"\n"), c.typ()), c.pub()...))
	return binary.BigEndian.Uint32(h[:4])
}

// vkey is the witness's cosignature verifier key.
func (c *cosigner) vkey() string {
	return fmt.Sprintf("%s+%08x+%s", c.name, c.id(), base64.StdEncoding.EncodeToString(append([]byte{c.typ()}, c.pub()...)))
}

// cosign returns signed with this witness's cosignature at time ts.
func (c *cosigner) cosign(t testing.TB, signed []byte, ts uint64) []byte {
	t.Helper()
	split := bytes.LastIndex(signed, []byte("\n\n"))
	text := signed[:split+1]
	var sig []byte
	if c.ed != nil {
		sig = ed25519.Sign(c.ed, fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, text))
	} else {
		lines := strings.Split(string(text), "\n")
		var size uint64
		fmt.Sscan(lines[1], &size)
		root, _ := base64.StdEncoding.DecodeString(lines[2])
		m := []byte("subtree/v1\n\x00")
		m = append(m, byte(len(c.name)))
		m = append(m, c.name...)
		m = binary.BigEndian.AppendUint64(m, ts)
		m = append(m, byte(len(lines[0])))
		m = append(m, lines[0]...)
		m = binary.BigEndian.AppendUint64(m, 0)
		m = binary.BigEndian.AppendUint64(m, size)
		m = append(m, root...)
		var err error
		sig, err = c.pq.SignDeterministic(m, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	raw := binary.BigEndian.AppendUint32(nil, c.id())
	raw = binary.BigEndian.AppendUint64(raw, ts)
	raw = append(raw, sig...)
	return fmt.Appendf(bytes.Clone(signed), "— %s %s\n", c.name, base64.StdEncoding.EncodeToString(raw))
}

const goldenOrigin = "enigm.test/tlog-proof"

// goldenWorld is the log behind the golden proofs: 1000 leaves
// (leaf(i)), the golden signer, two witnesses (Ed25519 and ML-DSA-44).
type goldenWorld struct {
	log    *translog.Log
	signer *translog.Signer
	w1, w2 *cosigner
}

func newGoldenWorld(t testing.TB) *goldenWorld {
	t.Helper()
	s := proofSigner(t, goldenOrigin, "golden log")
	return &goldenWorld{log: logOf(t, s, 1000), signer: s, w1: newCosigner(t, "witness1.enigm.test", false), w2: newCosigner(t, "witness2.enigm.test", true)}
}

// logOf returns a log in memory signed by s with the n leaves leaf(0)
// … leaf(n-1), integrated.
func logOf(t testing.TB, s *translog.Signer, n int) *translog.Log {
	t.Helper()
	st := newMemStorage()
	l := translog.New(st, s)
	for i := range n {
		st.Add(leaf(i))
	}
	if _, err := l.Integrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// proof returns the proof of leaf i, cosigned by ws at time 1700000000.
func (g *goldenWorld) proof(t testing.TB, i uint64, extra []byte, ws ...*cosigner) *translog.Proof {
	t.Helper()
	p, err := g.log.Proof(context.Background(), i, extra)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		p.Checkpoint = w.cosign(t, p.Checkpoint, 1700000000)
	}
	return p
}

func (g *goldenWorld) quorum(k int) *translog.WitnessQuorum {
	return &translog.WitnessQuorum{Keys: []string{g.w1.vkey(), g.w2.vkey()}, K: k}
}

func mustBytes(t testing.TB, p *translog.Proof) []byte {
	t.Helper()
	b, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProofGolden: the committed proofs (testdata/tlogproof; go test
// -run TestProofGolden -update rewrites them) parse, give back their
// exact bytes, carry the index and path of the golden log's leaf, and
// verify under the golden keys and witness quorum; and the golden log
// (deterministic keys and signatures) still writes exactly these bytes.
func TestProofGolden(t *testing.T) {
	g := newGoldenWorld(t)
	cases := []struct {
		file  string
		index uint64
		extra bool
		ws    []*cosigner
	}{
		{"leaf-0.tlog-proof", 0, false, nil},
		{"leaf-617-extra.tlog-proof", 617, true, nil},
		{"leaf-999-cosigned.tlog-proof", 999, false, []*cosigner{g.w1, g.w2}},
	}
	for _, c := range cases {
		path := filepath.Join("testdata", "tlogproof", c.file)
		var extra []byte
		if c.extra {
			extra = leaf(int(c.index))
		}
		if *updateGolden {
			if err := os.WriteFile(path, mustBytes(t, g.proof(t, c.index, extra, c.ws...)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p, err := translog.ParseProof(b)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if back := mustBytes(t, p); !bytes.Equal(back, b) {
			t.Errorf("%s: parse then format changed the bytes:\n%s", c.file, back)
		}
		if now := mustBytes(t, g.proof(t, c.index, extra, c.ws...)); !bytes.Equal(now, b) {
			t.Errorf("%s: the golden log now writes another proof (a format change? then -update and say so):\n%s", c.file, now)
		}
		want := g.proof(t, c.index, extra)
		if p.Index != want.Index || !equalProofs(p.Hashes, want.Hashes) || !bytes.Equal(p.Extra, extra) {
			t.Errorf("%s: index %d, %d hashes, extra %d bytes; the log gives index %d, %d hashes", c.file, p.Index, len(p.Hashes), len(p.Extra), want.Index, len(want.Hashes))
		}
		var q *translog.WitnessQuorum
		if len(c.ws) > 0 {
			q = g.quorum(2)
		}
		v, err := p.Verify(leaf(int(c.index)), goldenOrigin, g.signer.VerifierKeys(), q)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		// 1000 leaves, then the map leaf every checkpoint ends in.
		if v.Checkpoint.Size != 1001 || v.Index != c.index || len(v.Cosigners) != len(c.ws) {
			t.Errorf("%s: verified %+v", c.file, v)
		}
		for _, cs := range v.Cosigners {
			if cs.Time != 1700000000 {
				t.Errorf("%s: cosigner %s at %d", c.file, cs.Name, cs.Time)
			}
		}
	}
}

// TestProofSize: at 1000 leaves the inclusion proof of leaf 0 has
// ⌈log2 1000⌉ = 10 hashes.
func TestProofSize(t *testing.T) {
	g := newGoldenWorld(t)
	if p := g.proof(t, 0, nil); len(p.Hashes) != 10 {
		t.Fatalf("%d hashes for leaf 0 of 1000", len(p.Hashes))
	}
}

// TestProofAttacks: a proof altered in any way the attacker gains from is
// refused with the error that names what is wrong, and the genuine proof
// verifies.
func TestProofAttacks(t *testing.T) {
	g := newGoldenWorld(t)
	const idx = 617
	good := g.proof(t, idx, nil, g.w1, g.w2)
	keys := g.signer.VerifierKeys()
	if _, err := good.Verify(leaf(idx), goldenOrigin, keys, g.quorum(2)); err != nil {
		t.Fatal(err)
	}
	other := proofSigner(t, goldenOrigin, "another log")
	clone := func() *translog.Proof {
		c := *good
		c.Hashes = append([][]byte(nil), good.Hashes...)
		c.Checkpoint = bytes.Clone(good.Checkpoint)
		return &c
	}
	// sigLines splits the checkpoint into its text and signature lines.
	sigLines := func(cp []byte) (string, []string) {
		i := bytes.LastIndex(cp, []byte("\n\n"))
		return string(cp[:i+2]), strings.Split(strings.TrimSuffix(string(cp[i+2:]), "\n"), "\n")
	}
	cases := []struct {
		desc    string
		mutate  func(p *translog.Proof)
		leaf    []byte
		keys    []string
		q       *translog.WitnessQuorum
		wantErr error
	}{
		{desc: "the index of the next leaf", mutate: func(p *translog.Proof) { p.Index++ }, wantErr: translog.ErrNotIncluded},
		{desc: "an index beyond the tree", mutate: func(p *translog.Proof) { p.Index = 1000 }, wantErr: translog.ErrNotIncluded},
		{desc: "the path truncated by its last hash", mutate: func(p *translog.Proof) { p.Hashes = p.Hashes[:len(p.Hashes)-1] }, wantErr: translog.ErrNotIncluded},
		{desc: "the path without its first hash", mutate: func(p *translog.Proof) { p.Hashes = p.Hashes[1:] }, wantErr: translog.ErrNotIncluded},
		{desc: "a path with one more hash", mutate: func(p *translog.Proof) { p.Hashes = append(p.Hashes, p.Hashes[0]) }, wantErr: translog.ErrNotIncluded},
		{desc: "a path with one bit flipped", mutate: func(p *translog.Proof) {
			h := bytes.Clone(p.Hashes[3])
			h[0] ^= 1
			p.Hashes[3] = h
		}, wantErr: translog.ErrNotIncluded},
		{desc: "another leaf", leaf: leaf(idx + 1), wantErr: translog.ErrNotIncluded},
		{desc: "the leaf with one byte more", leaf: append(leaf(idx), 0), wantErr: translog.ErrNotIncluded},
		{desc: "a checkpoint of the same origin signed by another log's keys", mutate: func(p *translog.Proof) {
			o, err := logOf(t, other, 1000).Proof(context.Background(), idx, nil)
			if err != nil {
				t.Fatal(err)
			}
			p.Checkpoint = o.Checkpoint
		}, wantErr: translog.ErrBadCheckpoint},
		{desc: "verified with another log's keys", keys: other.VerifierKeys(), wantErr: translog.ErrBadCheckpoint},
		{desc: "the checkpoint without its ML-DSA-44 signature", mutate: func(p *translog.Proof) {
			text, sigs := sigLines(p.Checkpoint)
			p.Checkpoint = []byte(text + strings.Join(append([]string{sigs[0]}, sigs[2:]...), "\n") + "\n")
		}, wantErr: translog.ErrBadCheckpoint},
		{desc: "an Ed25519 cosignature that does not verify", mutate: func(p *translog.Proof) {
			text, sigs := sigLines(p.Checkpoint)
			raw, _ := base64.StdEncoding.DecodeString(strings.Fields(sigs[2])[2])
			raw[len(raw)-1] ^= 1
			sigs[2] = "— " + g.w1.name + " " + base64.StdEncoding.EncodeToString(raw)
			p.Checkpoint = []byte(text + strings.Join(sigs, "\n") + "\n")
		}, wantErr: translog.ErrBadCheckpoint},
		{desc: "an ML-DSA-44 cosignature with another timestamp", mutate: func(p *translog.Proof) {
			text, sigs := sigLines(p.Checkpoint)
			raw, _ := base64.StdEncoding.DecodeString(strings.Fields(sigs[3])[2])
			raw[11] ^= 1
			sigs[3] = "— " + g.w2.name + " " + base64.StdEncoding.EncodeToString(raw)
			p.Checkpoint = []byte(text + strings.Join(sigs, "\n") + "\n")
		}, wantErr: translog.ErrBadCheckpoint},
		{desc: "genuine cosignatures of another checkpoint", mutate: func(p *translog.Proof) {
			o, err := logOf(t, g.signer, 999).Proof(context.Background(), 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, theirs := sigLines(g.w2.cosign(t, g.w1.cosign(t, o.Checkpoint, 1), 1))
			text, ours := sigLines(p.Checkpoint)
			p.Checkpoint = []byte(text + strings.Join(append(ours[:2], theirs[2:]...), "\n") + "\n")
		}, wantErr: translog.ErrBadCheckpoint},
		{desc: "one cosignature where the quorum asks for two", mutate: func(p *translog.Proof) {
			text, sigs := sigLines(p.Checkpoint)
			p.Checkpoint = []byte(text + strings.Join(sigs[:3], "\n") + "\n")
		}, q: g.quorum(2), wantErr: translog.ErrQuorum},
		{desc: "no cosignature where the quorum asks for one", mutate: func(p *translog.Proof) {
			text, sigs := sigLines(p.Checkpoint)
			p.Checkpoint = []byte(text + strings.Join(sigs[:2], "\n") + "\n")
		}, q: g.quorum(1), wantErr: translog.ErrQuorum},
		{desc: "a quorum that counts one witness's two keys twice", q: &translog.WitnessQuorum{
			Keys: []string{g.w1.vkey(), newCosigner(t, g.w1.name, true).vkey()}, K: 2}, wantErr: translog.ErrBadKey},
		{desc: "the log's own key as a witness", q: &translog.WitnessQuorum{Keys: []string{keys[1]}, K: 1}, wantErr: translog.ErrBadKey},
		{desc: "a quorum larger than its witnesses", q: &translog.WitnessQuorum{Keys: []string{g.w1.vkey()}, K: 2}, wantErr: translog.ErrBadKey},
		{desc: "an extension line in the checkpoint", mutate: func(p *translog.Proof) {
			text, sigs := sigLines(p.Checkpoint)
			p.Checkpoint = []byte(strings.TrimSuffix(text, "\n") + "extension\n\n" + strings.Join(sigs, "\n") + "\n")
		}, wantErr: translog.ErrBadCheckpoint},
	}
	for _, c := range cases {
		p := clone()
		if c.mutate != nil {
			c.mutate(p)
		}
		l, k, q := c.leaf, c.keys, c.q
		if l == nil {
			l = leaf(idx)
		}
		if k == nil {
			k = keys
		}
		if q == nil {
			q = g.quorum(2)
		}
		b := mustBytes(t, p)
		v := proofVector{Desc: c.desc, Proof: string(b), Leaf: l, LogKeys: k, WitnessKeys: q.Keys, Quorum: q.K, WantErr: errName(c.wantErr)}
		checkVector(t, v)
		// Through the bytes, as a verifier receives it.
		err := verifyVector(v)
		if !errors.Is(err, c.wantErr) {
			t.Errorf("%s: got %v, want %v", c.desc, err, c.wantErr)
		}
		t.Logf("%s: %v", c.desc, err)
	}
	// The genuine proof is a vector too.
	checkVector(t, proofVector{Desc: "the genuine proof", Proof: string(mustBytes(t, good)), Leaf: leaf(idx), LogKeys: keys,
		WitnessKeys: g.quorum(2).Keys, Quorum: 2})
}

// proofVector is one case of testdata/tlogproof/vectors: a proof, the
// leaf and the keys to verify it with, and the error Verify must give
// (empty: it verifies). Other implementations can run the same files
// (TestProofTorchwood does).
type proofVector struct {
	Desc        string   `json:"desc"`
	Proof       string   `json:"proof"`
	Leaf        []byte   `json:"leaf"`
	LogKeys     []string `json:"log_keys"`
	WitnessKeys []string `json:"witness_keys"`
	Quorum      int      `json:"quorum"`
	// WantErr: "", "bad_proof", "not_included", "bad_checkpoint",
	// "quorum" or "bad_key".
	WantErr string `json:"want_err"`
}

var vectorErrs = map[string]error{"bad_proof": translog.ErrBadProof, "not_included": translog.ErrNotIncluded,
	"bad_checkpoint": translog.ErrBadCheckpoint, "quorum": translog.ErrQuorum, "bad_key": translog.ErrBadKey}

func errName(err error) string {
	for n, e := range vectorErrs {
		if e == err {
			return n
		}
	}
	return ""
}

// vectorFile is the vector's file: its description, spelled as a name.
func vectorFile(desc string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, desc)
	return filepath.Join("testdata", "tlogproof", "vectors", name+".json")
}

// checkVector writes v's file under -update, and otherwise requires the
// committed file to be exactly v (the golden world is deterministic).
func checkVector(t *testing.T, v proofVector) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	f := vectorFile(v.Desc)
	if *updateGolden {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	have, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b) {
		t.Errorf("%s: the committed vector differs from what the golden world makes now (-update, and say why)", f)
	}
}

// verifyVector runs Verify on a vector as a verifier receives it.
func verifyVector(v proofVector) error {
	p, err := translog.ParseProof([]byte(v.Proof))
	if err != nil {
		return err
	}
	var q *translog.WitnessQuorum
	if len(v.WitnessKeys) > 0 {
		q = &translog.WitnessQuorum{Keys: v.WitnessKeys, K: v.Quorum}
	}
	_, err = p.Verify(v.Leaf, goldenOrigin, v.LogKeys, q)
	return err
}

// TestProofVectors: every committed vector gives its error (and no other
// file lies in the directory unchecked).
func TestProofVectors(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "tlogproof", "vectors", "*.json"))
	if err != nil || len(files) < 20 {
		t.Fatalf("%d vectors (%v)", len(files), err)
	}
	for _, f := range files {
		v := readVector(t, f)
		err := verifyVector(v)
		want := vectorErrs[v.WantErr]
		if (v.WantErr == "") != (err == nil) || (want != nil && !errors.Is(err, want)) {
			t.Errorf("%s (%s): got %v, want %q", f, v.Desc, err, v.WantErr)
		}
	}
}

func readVector(t *testing.T, f string) proofVector {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var v proofVector
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", f, err)
	}
	if _, ok := vectorErrs[v.WantErr]; !ok && v.WantErr != "" {
		t.Fatalf("%s: want_err %q", f, v.WantErr)
	}
	return v
}

// TestParseProofRefuses: bytes that are not the one spelling of a
// tlog-proof are ErrBadProof: lines the format does not have, other
// encodings of its numbers and hashes, over-long inputs.
func TestParseProofRefuses(t *testing.T) {
	g := newGoldenWorld(t)
	good := string(mustBytes(t, g.proof(t, 617, []byte("x"), g.w1)))
	if _, err := translog.ParseProof([]byte(good)); err != nil {
		t.Fatal(err)
	}
	head, cp, _ := strings.Cut(good, "\n\n")
	lines := strings.Split(head, "\n") // header, extra, index, hashes…
	join := func(ls ...string) string { return strings.Join(ls, "\n") + "\n\n" + cp }
	hashes := lines[3:]
	h0 := hashes[0]
	cases := []struct{ desc, in string }{
		{"empty", ""},
		{"another version", strings.Replace(good, "@v1", "@v2", 1)},
		{"a header with a trailing space", strings.Replace(good, "@v1\n", "@v1 \n", 1)},
		{"a blank line after the header", join(append([]string{lines[0], ""}, lines[1:]...)...)},
		{"two extra lines", join(append([]string{lines[0], lines[1]}, lines[1:]...)...)},
		{"an extra line after the index", join(append([]string{lines[0], lines[2], lines[1]}, hashes...)...)},
		{"an empty extra line", join(append([]string{lines[0], "extra ", lines[2]}, hashes...)...)},
		{"extra without padding", join(append([]string{lines[0], "extra eA", lines[2]}, hashes...)...)},
		{"extra with non-zero padding bits", join(append([]string{lines[0], "extra eR==", lines[2]}, hashes...)...)},
		{"no index line", join(append([]string{lines[0], lines[1]}, hashes...)...)},
		{"an index with a leading zero", strings.Replace(good, "index 617", "index 0617", 1)},
		{"an index with a plus sign", strings.Replace(good, "index 617", "index +617", 1)},
		{"an index with two spaces", strings.Replace(good, "index 617", "index  617", 1)},
		{"an index beyond 2^64", strings.Replace(good, "index 617", "index 18446744073709551616", 1)},
		{"a hash without padding", strings.Replace(good, h0, strings.TrimSuffix(h0, "="), 1)},
		{"a hash in URL-safe base64", join(append(lines[:3], base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)))...)},
		{"a hash of 31 bytes", strings.Replace(good, h0, base64.StdEncoding.EncodeToString(make([]byte, 31)), 1)},
		{"a hash with a carriage return", strings.Replace(good, h0, h0[:10]+"\r"+h0[10:], 1)},
		{"CRLF line ends", strings.ReplaceAll(good, "\n", "\r\n")},
		{"a line that is no hash among the hashes", join(append(append(lines[:4:4], "not a hash"), hashes[1:]...)...)},
		{"65 hashes", join(append(lines[:3:3], strings.Split(strings.Repeat(h0+"\n", 65), "\n")[:65]...)...)},
		{"no empty line before the checkpoint", strings.Replace(good, "\n\n", "\n", 1)},
		{"no checkpoint", head + "\n\n"},
		{"a checkpoint without signatures", head + "\n\n" + strings.SplitN(cp, "\n\n", 2)[0] + "\n"},
		{"a line after the signatures", good + "trailing\n"},
		{"no final newline", strings.TrimSuffix(good, "\n")},
		{"a signature line with a space in the name", strings.Replace(good, "— witness1.enigm.test ", "— witness1 enigm.test ", 1)},
		{"a control character in the checkpoint", strings.Replace(good, "enigm.test/tlog-proof\n", "enigm.test/tlog-proof\t\n", 1)},
		{"too large", translog.ProofHeader + "\n" + strings.Repeat("A", translog.MaxProofSize)},
	}
	for _, c := range cases {
		p, err := translog.ParseProof([]byte(c.in))
		if !errors.Is(err, translog.ErrBadProof) {
			t.Errorf("%s: got %+v, %v; want ErrBadProof", c.desc, p, err)
		}
		t.Logf("%s: %v", c.desc, err)
	}
}

// TestProofXModTlog: the pieces of our proof check with code other than
// ours and transparency-dev's: golang.org/x/mod/sumdb/note opens the
// checkpoint with the Ed25519 log key, and golang.org/x/mod/sumdb/tlog
// (the Go checksum database's Merkle code) checks the inclusion path.
func TestProofXModTlog(t *testing.T) {
	g := newGoldenWorld(t)
	for _, i := range []uint64{0, 1, 255, 256, 617, 998, 999} {
		p := g.proof(t, i, nil, g.w1)
		v, err := note.NewVerifier(g.signer.VerifierKeys()[0])
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(p.Checkpoint, note.VerifierList(v))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(n.Text, "\n")
		th, err := tlog.ParseHash(lines[2])
		if err != nil || lines[1] != "1001" { // 1000 leaves and the map leaf
			t.Fatalf("checkpoint text %q", n.Text)
		}
		rp := make(tlog.RecordProof, len(p.Hashes))
		for j, h := range p.Hashes {
			copy(rp[j][:], h)
		}
		if err := tlog.CheckRecord(rp, 1001, th, int64(i), tlog.RecordHash(leaf(int(i)))); err != nil {
			t.Errorf("leaf %d: x/mod/sumdb/tlog refuses our path: %v", i, err)
		}
		if err := tlog.CheckRecord(rp, 1001, th, int64(i), tlog.RecordHash(leaf(int(i)+1))); err == nil {
			t.Errorf("leaf %d: x/mod/sumdb/tlog accepts the path for another leaf", i)
		}
	}
}
