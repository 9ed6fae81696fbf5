package command

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"filippo.io/mldsa"

	"github.com/enigm/enigm/keystore"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/translog"
)

// DefaultLogOriginPrefix starts the default log origin,
// DefaultLogOriginPrefix + the first 16 hex digits of SHA-256 of the log's
// Ed25519 public key: a server id that is stable as long as the log keys
// are, and unique to them.
const DefaultLogOriginPrefix = "enigm-command/"

// logKeyAuth is the authentication method the keystore records when the
// server unlocks it to sign a checkpoint.
const logKeyAuth = "server"

// LogSigner returns the signer of the transparency log's checkpoints over
// the log keys in Command's keystore (DataDir/keystore, the one holding
// the organisation keys): an Ed25519 and an ML-DSA-44 key that can sign
// checkpoints of this log and nothing else
// (keystore.IdentityKey.CheckpointSigner). The keys are generated, and
// the keystore created, at the first call; later calls load them. The
// origin is config.LogOrigin, or DefaultLogOriginPrefix followed by the
// Ed25519 key's fingerprint.
//
// The keystore is not held open: each checkpoint opens it, unlocks it
// (one passphrase derivation), signs with both keys and closes it, so that
// `enigm-command org …` can use it between checkpoints. Instances over one
// database must share the keystore (as they do for organisation keys):
// checkpoints signed under other keys do not verify and stop integration.
func LogSigner(ctx context.Context, config Config) (*translog.Signer, error) {
	cfg, err := config.withDefaults()
	if err != nil {
		return nil, err
	}
	lk := &logKeys{keys: newOrgKeys(&cfg)}
	if err := lk.load(ctx); err != nil {
		return nil, fmt.Errorf("command: the transparency log keys: %w", err)
	}
	origin := cfg.LogOrigin
	if origin == "" {
		fp := sha256.Sum256(lk.edPub)
		origin = DefaultLogOriginPrefix + hex.EncodeToString(fp[:8])
	}
	lk.origin = origin
	s, err := translog.NewSigner(origin,
		&logKeySigner{lk: lk, alg: keystore.AlgCheckpointEd25519, pub: lk.edPub},
		&logKeySigner{lk: lk, alg: keystore.AlgCheckpointMLDSA44, pub: lk.pqPub})
	if err != nil {
		return nil, fmt.Errorf("command: --log-origin: %w", err)
	}
	return s.WithSession(lk.session), nil
}

// logKeys are the two checkpoint keys in Command's keystore. Only their
// ids and public keys stay in memory; the private keys are unwrapped in
// the keystore for the length of one signing session.
type logKeys struct {
	keys   *orgKeys
	origin string
	edID   keystore.KeyID
	pqID   keystore.KeyID
	edPub  ed25519.PublicKey
	pqPub  *mldsa.PublicKey

	mu  sync.Mutex      // one session at a time
	cur *keystore.Store // the open keystore during a session
}

// load finds the active checkpoint keys, generating whichever is missing
// (a first start, or one interrupted between the two).
func (l *logKeys) load(ctx context.Context) error {
	l.keys.mu.Lock()
	defer l.keys.mu.Unlock()
	st, err := l.keys.open(ctx, true)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.List()
	if err != nil {
		return err
	}
	found := map[keystore.Algorithm][]keystore.KeyInfo{}
	for _, k := range list {
		if k.Problem == "" && k.Class == keystore.ClassIdentity && k.State == lifecycle.Active &&
			(k.Algorithm == keystore.AlgCheckpointEd25519 || k.Algorithm == keystore.AlgCheckpointMLDSA44) {
			found[k.Algorithm] = append(found[k.Algorithm], k)
		}
	}
	for _, alg := range []keystore.Algorithm{keystore.AlgCheckpointEd25519, keystore.AlgCheckpointMLDSA44} {
		switch len(found[alg]) {
		case 0:
			info, err := st.Generate(keystore.ClassIdentity, keystore.GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: alg})
			if err != nil {
				return fmt.Errorf("generating the %v key: %w", alg, err)
			}
			l.keys.cfg.Logger.Info("generated a transparency log key in the keystore", "algorithm", alg.String(), "key", info.ID.String())
			found[alg] = []keystore.KeyInfo{info}
		case 1:
		default:
			ids := make([]string, len(found[alg]))
			for i, k := range found[alg] {
				ids[i] = k.ID.String()
			}
			return fmt.Errorf("the keystore holds %d active %v log keys (%s); a log signs with one: retire all but the one its checkpoints verify under",
				len(ids), alg, strings.Join(ids, ", "))
		}
	}
	ed, pq := found[keystore.AlgCheckpointEd25519][0], found[keystore.AlgCheckpointMLDSA44][0]
	if len(ed.Public) != ed25519.PublicKeySize {
		return fmt.Errorf("log key %s: public key of %d bytes", ed.ID, len(ed.Public))
	}
	pqPub, err := mldsa.NewPublicKey(mldsa.MLDSA44(), pq.Public)
	if err != nil {
		return fmt.Errorf("log key %s: %w", pq.ID, err)
	}
	l.edID, l.pqID, l.edPub, l.pqPub = ed.ID, pq.ID, ed25519.PublicKey(ed.Public), pqPub
	return nil
}

// session opens and unlocks the keystore, runs sign (both signatures of
// one checkpoint) and closes it.
func (l *logKeys) session(sign func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys.mu.Lock()
	defer l.keys.mu.Unlock()
	st, err := l.keys.open(context.Background(), false)
	if err != nil {
		return fmt.Errorf("command: opening the keystore to sign a checkpoint: %w", err)
	}
	defer st.Close()
	st.Authenticate(logKeyAuth)
	st.SetAppAuthorized(true)
	l.cur = st
	defer func() { l.cur = nil }()
	return sign()
}

// logKeySigner is one checkpoint key as a crypto.Signer; it signs only
// inside logKeys.session (translog.Signer.WithSession).
type logKeySigner struct {
	lk  *logKeys
	alg keystore.Algorithm
	pub crypto.PublicKey
}

func (s *logKeySigner) Public() crypto.PublicKey { return s.pub }

func (s *logKeySigner) Sign(r io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	st := s.lk.cur
	if st == nil {
		return nil, errors.New("command: a log key signs only inside its keystore session")
	}
	id := s.lk.edID
	if s.alg == keystore.AlgCheckpointMLDSA44 {
		id = s.lk.pqID
	}
	ik, err := st.Identity(id)
	if err != nil {
		return nil, err
	}
	cs, err := ik.CheckpointSigner(s.lk.origin)
	if err != nil {
		return nil, err
	}
	return cs.Sign(r, msg, opts)
}
