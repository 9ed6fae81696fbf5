package command

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/translog"
)

// Recovery on witnessed time (translog.md): Command keeps, for each open
// recovery, the first checkpoint that includes the recovery_request leaf
// and carries a valid cosignature of every witness it submits to
// (Config.LogWitnesses), serves it as evidence, and appends the recover
// link only once its clock is past the newest of those cosignatures'
// times plus the waiting period. Without witnesses nothing here runs and
// the waiting period is Command's clock and the links' times, as before.

// witnessClockMargin is added to the witnessed end of a waiting period
// before Command appends the recover link, so that the witnesses'
// cosignatures of the checkpoint that includes it (made after it is
// appended, by their clocks) are past that end too, even when their
// clocks run a little behind Command's.
const witnessClockMargin = 2 * time.Second

// recoveryWitness is the state of the witnessed-recovery recorder.
type recoveryWitness struct {
	rw   *store.RecoveryWitnesses
	done chan struct{}
}

// witnessedRecoveries reports whether this server records witnessed
// recovery requests: it publishes its log and submits it to witnesses.
func (s *Server) witnessedRecoveries() bool {
	return s.tlog != nil && len(s.cfg.LogWitnesses) > 0 && s.rwit != nil
}

// startRecoveryWitness starts the recorder, once the log is started.
func (s *Server) startRecoveryWitness() error {
	if s.tlog == nil || len(s.cfg.LogWitnesses) == 0 {
		return nil
	}
	rw, err := store.RecoveryWitnessStorage(s.store)
	if err != nil {
		return err
	}
	s.rwit = &recoveryWitness{rw: rw, done: make(chan struct{})}
	every := s.cfg.LogInterval
	if every <= 0 {
		every = DefaultLogInterval
	}
	go func() {
		defer close(s.rwit.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := s.recordWitnessed(ctx); err != nil {
				s.log.Warn("recording witnessed recovery requests failed; retrying", "err", err)
			}
			cancel()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// stopRecoveryWitness waits for the recorder to end (s.stop is closed).
func (s *Server) stopRecoveryWitness() {
	if s.rwit != nil {
		<-s.rwit.done
	}
}

// checkpointWitnessed returns the newest stored checkpoint and the
// newest of its configured witnesses' cosignature times, ok only when
// every configured witness cosigned it validly.
func (s *Server) checkpointWitnessed(ctx context.Context) (signed []byte, size uint64, at time.Time, ok bool, err error) {
	signed, c, err := s.tlog.log.Checkpoint(ctx)
	if err != nil {
		return nil, 0, time.Time{}, false, err
	}
	for _, w := range s.cfg.LogWitnesses {
		cs, err := w.Cosignature(signed)
		if err != nil {
			return nil, 0, time.Time{}, false, err
		}
		if !cs.Valid {
			return signed, c.Size, time.Time{}, false, nil
		}
		if cs.Time.After(at) {
			at = cs.Time
		}
	}
	return signed, c.Size, at, true, nil
}

// recordWitnessed keeps the newest checkpoint as the witnessed checkpoint
// of every open recovery whose request it includes and that has none yet.
func (s *Server) recordWitnessed(ctx context.Context) error {
	if !s.witnessedRecoveries() {
		return nil
	}
	todo, err := s.rwit.rw.Unwitnessed(ctx)
	if err != nil || len(todo) == 0 {
		return err
	}
	signed, size, at, ok, err := s.checkpointWitnessed(ctx)
	if errors.Is(err, translog.ErrNotFound) {
		return nil // no checkpoint yet
	}
	if err != nil || !ok {
		return err
	}
	for _, r := range todo {
		idx, err := s.tlog.ls.LeafIndex(ctx, r.AccountID, r.RequestSeq)
		if errors.Is(err, store.ErrNotFound) || (err == nil && idx >= size) {
			continue // not integrated yet
		}
		if err != nil {
			return err
		}
		kept, err := s.rwit.rw.Put(ctx, store.RecoveryWitness{RecoveryID: r.RecoveryID, AccountID: r.AccountID, RequestSeq: r.RequestSeq,
			LeafIndex: idx, TreeSize: size, Checkpoint: signed, WitnessedAt: at, CreatedAt: s.now()})
		if err != nil {
			return err
		}
		if kept {
			s.log.Info("recovery request witnessed", "recovery", r.RecoveryID, "account", r.AccountID, "witnessed_at", rfc3339(at), "tree_size", size)
		}
	}
	return nil
}

// witnessedNotBefore is when the waiting period of rec ends by witnessed
// time (the request's witnessed time plus the waiting period), and that
// witnessed time; found is false while the request is not witnessed.
func (s *Server) witnessedNotBefore(ctx context.Context, v *verified, rec store.Recovery) (nb, at time.Time, found bool, err error) {
	if err := s.recordWitnessed(ctx); err != nil {
		return time.Time{}, time.Time{}, false, err
	}
	w, err := s.rwit.rw.Get(ctx, rec.ID)
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, time.Time{}, false, err
	}
	delay := s.notBefore(v, rec).Sub(rec.RequestedAt)
	return w.WitnessedAt.Add(delay), w.WitnessedAt, true, nil
}

// holdUntilWitnessed refuses the recover link of rec while the waiting
// period has not passed by witnessed time (nil when this server has no
// witnesses).
func (s *Server) holdUntilWitnessed(r *http.Request, v *verified, rec store.Recovery) *apiError {
	if !s.witnessedRecoveries() {
		return nil
	}
	nb, at, found, err := s.witnessedNotBefore(r.Context(), v, rec)
	if err != nil {
		return storeErr(err)
	}
	if !found {
		return errorf(http.StatusConflict, "too_early", "the recovery request %s is not witnessed yet (no checkpoint cosigned by every witness of this server includes it); completion is allowed the waiting period after it is, by witnessed time", rec.ID)
	}
	if s.now().Before(nb.Add(witnessClockMargin)) {
		return errorf(http.StatusConflict, "too_early", "the recovery request %s was first witnessed at %s; completion allowed after %s by witnessed time", rec.ID, rfc3339(at), rfc3339(nb))
	}
	return nil
}

// handleRecoveryWitness is GET /v1/recoveries/{rid}/witness: the first
// witnessed checkpoint that includes the request, with the request's
// inclusion proof in it.
func (s *Server) handleRecoveryWitness(w http.ResponseWriter, r *http.Request) *apiError {
	rec, e := s.recovery(r)
	if e != nil {
		return e
	}
	if !s.witnessedRecoveries() {
		return notFound("this server submits its log to no witness, so recovery %s has no witnessed time; devices bound the waiting period by link times", rec.ID)
	}
	v, err := s.load(r.Context(), rec.AccountID)
	if err != nil {
		return storeErr(err)
	}
	nb, _, found, err := s.witnessedNotBefore(r.Context(), v, rec)
	if err != nil {
		return storeErr(err)
	}
	if !found {
		return notFound("recovery %s is not witnessed yet: no checkpoint cosigned by every witness of this server includes its request; try again after the next checkpoint", rec.ID)
	}
	wit, err := s.rwit.rw.Get(r.Context(), rec.ID)
	if err != nil {
		return storeErr(err)
	}
	p, err := s.tlog.log.InclusionProof(r.Context(), wit.LeafIndex, wit.TreeSize)
	if err != nil {
		return internal(fmt.Errorf("the inclusion proof of recovery %s's request in the tree of %d leaves: %w", rec.ID, wit.TreeSize, err))
	}
	writeJSON(w, http.StatusOK, api.RecoveryWitness{RecoveryID: rec.ID, Checkpoint: string(wit.Checkpoint), LeafIndex: wit.LeafIndex,
		Proof: nonNil(p), WitnessedAt: wit.WitnessedAt, NotBefore: nb})
	return nil
}
