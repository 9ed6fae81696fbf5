package tpm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/enigm/enigm/backend"
	"github.com/enigm/enigm/backend/tpm/internal/format"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

// TestGenerateTestdata rewrites the committed fuzz seeds and the verifier's
// test vectors from the simulator. Run with ENIGM_UPDATE_TESTDATA=1.
func TestGenerateTestdata(t *testing.T) {
	if os.Getenv("ENIGM_UPDATE_TESTDATA") != "1" {
		t.Skip("set ENIGM_UPDATE_TESTDATA=1 to regenerate testdata") // a maintenance tool, not a test
	}
	b := newSim(t, Options{PCRs: []int{16}})
	ak, err := b.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := mustProvision(t, b)
	s := mustOpen(t, b, st)
	sealed := mustSeal(t, s, "enigm/v1/kek/identity", key32)
	blob, _ := testkit.BindingKey(t, s)
	n := sha256Sum([]byte("enigm test nonce"))
	ev := testkit.Attest(t, s, blob, n)
	e, err := format.ParseEvidence(ev.Data)
	if err != nil {
		t.Fatal(err)
	}

	seeds := map[string][][]byte{
		"FuzzParseState":    {st},
		"FuzzParseObject":   {sealed, blob},
		"FuzzParseEvidence": {ev.Data},
		"FuzzParseTPM":      {e.AKPublic, e.KeyPublic, e.CertifyInfo, e.CertifySig, e.Quote, e.QuoteSig},
	}
	for target, list := range seeds {
		dir := filepath.Join("internal", "format", "testdata", "fuzz", target)
		testkit.NoErr(t, os.MkdirAll(dir, 0o755))
		for _, in := range list {
			sum := sha256.Sum256(in)
			name := filepath.Join(dir, "sim-"+hex.EncodeToString(sum[:8]))
			testkit.NoErr(t, os.WriteFile(name, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", in), 0o644))
		}
	}

	// Verifier vectors: one good evidence and its negatives.
	type vector struct {
		Desc     string `json:"desc"`
		Type     string `json:"type"`
		Evidence string `json:"evidence"`
		Nonce    string `json:"nonce"`
		Trusted  string `json:"trusted"`
		WantErr  string `json:"wantErr"`
		WantKey  string `json:"wantKey,omitempty"`
	}
	obj, _ := format.ParseObject(blob, format.KindBinding)
	hx := hex.EncodeToString
	mod := func(f func(*format.Evidence)) string {
		c := *e
		f(&c)
		d, err := wire.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return hx(d)
	}
	other := sha256Sum([]byte("another nonce"))
	vs := []vector{
		{Desc: "valid certify and quote", Type: EvidenceType, Evidence: hx(ev.Data), Nonce: hx(n), Trusted: hx(ak), WantErr: "", WantKey: hx(obj.Public)},
		{Desc: "replayed for another nonce", Type: EvidenceType, Evidence: hx(ev.Data), Nonce: hx(other), Trusted: hx(ak), WantErr: "nonce"},
		{Desc: "attestation key not trusted", Type: EvidenceType, Evidence: hx(ev.Data), Nonce: hx(n), Trusted: hx(e.KeyPublic), WantErr: "untrusted"},
		{Desc: "unknown evidence type", Type: "tpm2-quote", Evidence: hx(ev.Data), Nonce: hx(n), Trusted: hx(ak), WantErr: "invalid"},
		{Desc: "quote signature moved to certify", Type: EvidenceType, Evidence: mod(func(c *format.Evidence) { c.CertifySig = c.QuoteSig }), Nonce: hx(n), Trusted: hx(ak), WantErr: "invalid"},
		{Desc: "quote presented as certification", Type: EvidenceType, Evidence: mod(func(c *format.Evidence) { c.CertifyInfo, c.CertifySig = c.Quote, c.QuoteSig }), Nonce: hx(n), Trusted: hx(ak), WantErr: "invalid"},
		{Desc: "certified key swapped for the AK", Type: EvidenceType, Evidence: mod(func(c *format.Evidence) { c.KeyPublic = c.AKPublic }), Nonce: hx(n), Trusted: hx(ak), WantErr: "invalid"},
		{Desc: "truncated", Type: EvidenceType, Evidence: hx(ev.Data[:len(ev.Data)-1]), Nonce: hx(n), Trusted: hx(ak), WantErr: "invalid"},
	}
	out, _ := json.MarshalIndent(vs, "", "  ")
	testkit.NoErr(t, os.WriteFile(filepath.Join("attest", "testdata", "vectors.json"), append(out, '\n'), 0o644))
	_ = backend.Evidence{}
}
