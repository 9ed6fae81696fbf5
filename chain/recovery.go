package chain

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/enigm/enigm/hybrid"
)

// Recovery codes.
//
// A recovery code is 28 symbols of Crockford base32 (140 bits from the
// random source) followed by 4 checksum symbols (20 bits of SHA-256 over
// the data symbols), shown in eight groups of four:
//
//	K7QM-3XHD-…-…-…-…-…-CHK4
//
// Parsing ignores case, spaces and dashes and reads O as 0 and I, L as 1,
// so the usual transcription slips are harmless; any other typo fails the
// checksum with ErrRecoveryCode (probability of a missed typo: 2^-20).
// The recovery key is derived from the 28 data symbols with HKDF-SHA256:
// the code has 140 bits of entropy, so no password stretching is needed.

const (
	recoveryDataSymbols  = 28
	recoverySumSymbols   = 4
	recoveryTotalSymbols = recoveryDataSymbols + recoverySumSymbols
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// RecoveryCode is a recovery code. It must be kept secret: it derives the
// account's recovery key. It is shown to the user once (Reveal) and never
// stored on a device. Its String and Format methods print no secret.
type RecoveryCode struct {
	data [recoveryDataSymbols]byte // symbol values 0..31
}

// GenerateRecoveryCode draws a new recovery code from rand.
func GenerateRecoveryCode(rand io.Reader) (*RecoveryCode, error) {
	var buf [recoveryDataSymbols]byte
	if _, err := io.ReadFull(rand, buf[:]); err != nil {
		return nil, fmt.Errorf("chain: recovery code: reading randomness: %w", err)
	}
	c := &RecoveryCode{}
	for i, b := range buf {
		c.data[i] = b & 31 // 256 is a multiple of 32: uniform
	}
	clear(buf[:])
	return c, nil
}

// ParseRecoveryCode reads a recovery code as the user typed it.
func ParseRecoveryCode(s string) (*RecoveryCode, error) {
	var sym [recoveryTotalSymbols]byte
	n := 0
	for _, r := range s {
		switch {
		case r == '-' || r == ' ':
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		switch r {
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		v := strings.IndexRune(crockford, r)
		if v < 0 {
			return nil, errorf(ErrRecoveryCode, "character %q is not in the code alphabet", r)
		}
		if n == recoveryTotalSymbols {
			return nil, errorf(ErrRecoveryCode, "code is longer than %d symbols", recoveryTotalSymbols)
		}
		sym[n] = byte(v)
		n++
	}
	if n != recoveryTotalSymbols {
		return nil, errorf(ErrRecoveryCode, "code has %d symbols, want %d", n, recoveryTotalSymbols)
	}
	c := &RecoveryCode{}
	copy(c.data[:], sym[:recoveryDataSymbols])
	if c.checksum() != [recoverySumSymbols]byte(sym[recoveryDataSymbols:]) {
		return nil, errorf(ErrRecoveryCode, "checksum does not match: a symbol is mistyped")
	}
	return c, nil
}

func (c *RecoveryCode) checksum() [recoverySumSymbols]byte {
	h := sha256.New()
	h.Write([]byte("enigm/v1/recovery-code-checksum\x00"))
	h.Write(c.data[:])
	sum := h.Sum(nil)
	v := uint32(sum[0])<<12 | uint32(sum[1])<<4 | uint32(sum[2])>>4 // 20 bits
	var out [recoverySumSymbols]byte
	for i := recoverySumSymbols - 1; i >= 0; i-- {
		out[i] = byte(v & 31)
		v >>= 5
	}
	return out
}

// Reveal returns the code for showing to the user, once, in groups of
// four. The result must be kept secret.
func (c *RecoveryCode) Reveal() string {
	sum := c.checksum()
	all := append(c.data[:len(c.data):len(c.data)], sum[:]...)
	var b strings.Builder
	for i, v := range all {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(crockford[v])
	}
	return b.String()
}

// Key derives the hybrid recovery key: HKDF-SHA256 over the data symbols
// (salt "enigm/v1/recovery-key", info "hybrid-seed") gives the 64-byte
// hybrid seed. The same code always gives the same key. The key must be
// kept secret; only its public half goes into the chain.
func (c *RecoveryCode) Key() (*hybrid.PrivateKey, error) {
	var ikm [recoveryDataSymbols]byte
	for i, v := range c.data {
		ikm[i] = crockford[v]
	}
	seed, err := hkdf.Key(sha256.New, ikm[:], []byte("enigm/v1/recovery-key"), "hybrid-seed", hybrid.SeedSize)
	clear(ikm[:])
	if err != nil {
		return nil, fmt.Errorf("chain: recovery key derivation: %w", err)
	}
	defer clear(seed)
	return hybrid.NewPrivateKey(seed)
}

// Destroy overwrites the code.
func (c *RecoveryCode) Destroy() { clear(c.data[:]) }

// String prints no secret.
func (c *RecoveryCode) String() string { return "chain.RecoveryCode(redacted)" }

// Format prints no secret, whatever the verb; its value receiver covers a
// copy of the code and a field holding one. (The internal/redact idiom,
// written out: a pure core imports no module package but hybrid and wire.)
func (c RecoveryCode) Format(f fmt.State, _ rune) { io.WriteString(f, "chain.RecoveryCode(redacted)") }
