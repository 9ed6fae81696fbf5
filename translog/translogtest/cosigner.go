package translogtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"testing"
)

// Cosigner makes Ed25519 cosignature/v1 witness cosignatures
// (c2sp.org/tlog-cosignature, type 0x04) with any timestamp, written here
// independently of package translog: a witness for tests that need
// cosignatures of a chosen age.
type Cosigner struct {
	Name string
	Key  string // verifier key name+id+base64(0x04 || key)
	priv ed25519.PrivateKey
	id   uint32
}

// NewCosigner returns a cosigner named name with a new key.
func NewCosigner(t testing.TB, name string) *Cosigner {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := keyID(name, 0x04, pub)
	return &Cosigner{Name: name, priv: priv, id: id,
		Key: fmt.Sprintf("%s+%08x+%s", name, id, base64.StdEncoding.EncodeToString(append([]byte{0x04}, pub...)))}
}

// Cosign returns signed (a signed note) with this witness's cosignature
// line of timestamp ts (Unix seconds) appended.
func (c *Cosigner) Cosign(signed []byte, ts int64) []byte {
	i := bytes.Index(signed, []byte("\n\n"))
	text := signed[:i+1]
	msg := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, text)
	sig := binary.BigEndian.AppendUint32(nil, c.id)
	sig = binary.BigEndian.AppendUint64(sig, uint64(ts))
	sig = append(sig, ed25519.Sign(c.priv, msg)...)
	out := append([]byte(nil), signed...)
	return fmt.Appendf(out, "— %s %s\n", c.Name, base64.StdEncoding.EncodeToString(sig))
}
