package translog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
)

// sigEd25519Cosig is the signature type of an Ed25519 tlog-cosignature
// (cosignature/v1), what witnesses sign with besides ML-DSA-44.
const sigEd25519Cosig = 0x04

// maxWitnessResponse bounds what a witness may answer to add-checkpoint.
const maxWitnessResponse = 64 << 10

// ErrWitness: a witness refused the checkpoint, answered something that
// is not a valid cosignature from its key, or says it has seen a larger
// tree than the log's (evidence of a fork or a rollback; keep its
// answer).
var ErrWitness = errors.New("translog: witness")

// Witness is a c2sp.org/tlog-witness witness the log submits its
// checkpoints to. Safe for concurrent use.
type Witness struct {
	url    string
	client *http.Client
	v      note.Verifier

	mu   sync.Mutex
	size uint64 // the size the witness last cosigned, as far as we know
}

// NewWitness returns a witness at the submission prefix url
// (add-checkpoint is POSTed to url + "/add-checkpoint") with the
// cosignature verifier key vkey: an Ed25519 cosignature/v1 key (type
// 0x04) or an ML-DSA-44 one (type 0x06). client nil means
// http.DefaultClient.
func NewWitness(url, vkey string, client *http.Client) (*Witness, error) {
	v, typ, err := newVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if typ != sigEd25519Cosig && typ != sigMLDSA44 {
		return nil, fmt.Errorf("%w: witness key %q is not a cosignature key (type 0x04 or 0x06)", ErrBadKey, v.Name())
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Witness{url: strings.TrimSuffix(url, "/"), client: client, v: v}, nil
}

// Name returns the witness's key name.
func (w *Witness) Name() string { return w.v.Name() }

// Witness submits the log's newest checkpoint to w with a consistency
// proof from the size w last cosigned, checks the cosignature it returns,
// and stores it with the checkpoint (served from then on) unless a newer
// checkpoint replaced it meanwhile. It returns the cosignature lines.
// When w does not know our view of its state it answers 409 with its
// size, and the submission is retried once from that size; a witness
// that has cosigned a larger tree than ours is ErrWitness.
func (l *Log) Witness(ctx context.Context, w *Witness) ([]byte, error) {
	signed, c, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var sigs []byte
	for try := 0; ; try++ {
		old := w.size
		if old > c.Size {
			return nil, fmt.Errorf("%w %s: it cosigned a tree of %d leaves, the log has %d: keep its cosignature, it may be evidence of a rollback", ErrWitness, w.Name(), old, c.Size)
		}
		p, err := l.ConsistencyProof(ctx, old, c.Size)
		if err != nil {
			return nil, err
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", old)
		for _, h := range p {
			body.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
		}
		body.WriteString("\n")
		body.Write(signed)
		code, resp, err := w.post(ctx, body.Bytes())
		if err != nil {
			return nil, err
		}
		if code == http.StatusConflict && try == 0 {
			n, err := strconv.ParseUint(strings.TrimSuffix(string(resp), "\n"), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w %s: 409 without a tree size: %q", ErrWitness, w.Name(), resp)
			}
			w.size = n
			continue
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("%w %s: add-checkpoint answered %d: %s", ErrWitness, w.Name(), code, bytes.TrimSpace(resp))
		}
		sigs = resp
		break
	}
	// The cosignature lines, appended to the checkpoint, must open with
	// the witness's key alone.
	text := signed[:bytes.LastIndex(signed, []byte("\n\n"))+2]
	if len(sigs) == 0 || sigs[len(sigs)-1] != '\n' {
		return nil, fmt.Errorf("%w %s: the answer is not signature lines", ErrWitness, w.Name())
	}
	n, err := note.Open(append(append([]byte(nil), text...), sigs...), note.VerifierList(w.v))
	if err != nil {
		return nil, fmt.Errorf("%w %s: its cosignature does not verify: %v", ErrWitness, w.Name(), err)
	}
	var own []byte
	for _, s := range n.Sigs {
		own = fmt.Appendf(own, "— %s %s\n", s.Name, s.Base64)
	}
	w.size = c.Size
	err = l.st.Update(ctx, func(ctx context.Context, tx Tx) error {
		s, err := tx.State(ctx)
		if err != nil || !bytes.Equal(s.Checkpoint, signed) {
			return err // a newer checkpoint (or a cosignature) meanwhile: keep it
		}
		// A fresh cosignature replaces this witness's older one (a note
		// verifier reads only the first line of a key).
		s.Checkpoint = append(w.withoutOwn(signed), own...)
		return tx.PutState(ctx, s)
	})
	return own, err
}

func (w *Witness) post(ctx context.Context, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url+"/add-checkpoint", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%w %s: %v", ErrWitness, w.Name(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxWitnessResponse+1))
	if err != nil {
		return 0, nil, fmt.Errorf("%w %s: reading its answer: %v", ErrWitness, w.Name(), err)
	}
	if len(b) > maxWitnessResponse {
		return 0, nil, fmt.Errorf("%w %s: answer larger than %d bytes", ErrWitness, w.Name(), maxWitnessResponse)
	}
	return resp.StatusCode, b, nil
}

// edCosigVerifier is a note.Verifier of Ed25519 tlog-cosignatures
// (cosignature/v1): an 8-byte timestamp and an Ed25519 signature over
// "cosignature/v1\ntime <t>\n" followed by the note text.
type edCosigVerifier struct {
	noteID
	pub ed25519.PublicKey
}

func (v *edCosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	m := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", binary.BigEndian.Uint64(sig[:8]), msg)
	return ed25519.Verify(v.pub, m, sig[8:])
}

// withoutOwn returns the signed note without the signature lines of w's
// key.
func (w *Witness) withoutOwn(signed []byte) []byte {
	i := bytes.LastIndex(signed, []byte("\n\n")) + 2
	out := append([]byte(nil), signed[:i]...)
	for _, line := range bytes.SplitAfter(signed[i:], []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) == 3 && f[0] == "—" && f[1] == w.v.Name() {
			if raw, err := base64.StdEncoding.DecodeString(f[2]); err == nil && len(raw) >= 4 && binary.BigEndian.Uint32(raw) == w.v.KeyHash() {
				continue
			}
		}
		out = append(out, line...)
	}
	return out
}
