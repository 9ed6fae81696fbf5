package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/command/store"
	"github.com/enigm/enigm/translog"
)

// DefaultLogInterval is how often an instance integrates new log leaves
// and signs a new checkpoint.
const DefaultLogInterval = time.Second

// DefaultLogWitnessRefresh is how often, by default, an unchanged
// checkpoint is submitted to the witnesses again for a fresh cosignature
// (devices refuse checkpoints whose witnesses' timestamps are older than
// their maximum age, by default an hour).
const DefaultLogWitnessRefresh = 5 * time.Minute

// serverLog is the transparency log an instance publishes: the leaves the
// store sequences with every link (always, signer or not), integrated
// every interval and served under /log/ in c2sp.org/tlog-tiles form.
// Every instance over one database integrates; the store serialises them.
type serverLog struct {
	log  *translog.Log
	ls   *store.Log
	done chan struct{}
}

// startLog mounts /log/ and starts integrating, when Config.LogSigner is
// set.
func (s *Server) startLog(mux *http.ServeMux) error {
	if s.cfg.LogSigner == nil {
		return nil
	}
	ls, err := store.LogStorage(s.store)
	if err != nil {
		return err
	}
	s.tlog = &serverLog{log: translog.New(ls, s.cfg.LogSigner), ls: ls, done: make(chan struct{})}
	// A log already published under another origin or other keys cannot
	// be continued: refuse to start rather than fail every integration.
	if _, _, err := s.tlog.log.Checkpoint(context.Background()); err != nil && !errors.Is(err, translog.ErrNotFound) {
		origin := "?"
		if st, serr := ls.State(context.Background()); serr == nil {
			if i := bytes.IndexByte(st.Checkpoint, '\n'); i > 0 {
				origin = string(st.Checkpoint[:i])
			}
		}
		return fmt.Errorf("the database's transparency log was published as origin %q, and its checkpoint does not verify as %q under this keystore's log keys (%w): use origin %q (LogOrigin) and the keystore that holds its keys",
			origin, s.cfg.LogSigner.Origin(), err, origin)
	}
	h := http.StripPrefix("/log", s.tlog.log.Handler())
	mux.Handle("/log/", s.wrap("GET /log/", func(w http.ResponseWriter, r *http.Request) *apiError {
		h.ServeHTTP(w, r)
		return nil
	}))
	every := s.cfg.LogInterval
	if every <= 0 {
		every = DefaultLogInterval
	}
	go s.integrateLoop(every)
	return nil
}

func (s *Server) integrateLoop(every time.Duration) {
	defer close(s.tlog.done)
	t := time.NewTicker(every)
	defer t.Stop()
	witnessed := make([]int64, len(s.cfg.LogWitnesses)) // the size each last cosigned; -1 none
	witnessedAt := make([]time.Time, len(s.cfg.LogWitnesses))
	for i := range witnessed {
		witnessed[i] = -1
	}
	refresh := s.cfg.LogWitnessRefresh
	if refresh <= 0 {
		refresh = DefaultLogWitnessRefresh
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := s.tlog.log.Integrate(ctx)
		if err != nil {
			s.log.Warn("integrating the transparency log failed; retrying", "err", err)
		}
		// Each new checkpoint goes to every witness (one at a time; a
		// witness that fails is tried again at the next interval), and an
		// unchanged one again every refresh, so its cosignatures stay
		// fresh on an idle log.
		for i, w := range s.cfg.LogWitnesses {
			if err != nil || witnessed[i] == int64(c.Size) && time.Since(witnessedAt[i]) < refresh {
				continue
			}
			if _, werr := s.tlog.log.Witness(ctx, w); werr != nil {
				s.log.Warn("a witness did not cosign the log's checkpoint", "witness", w.Name(), "size", c.Size, "err", werr)
				continue
			}
			witnessed[i], witnessedAt[i] = int64(c.Size), time.Now()
		}
		cancel()
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// stopLog waits for the integration loop to end (s.stop is closed).
func (s *Server) stopLog() {
	if s.tlog != nil {
		<-s.tlog.done
	}
}

// logInfo is the "log" member of GET /v1/info: the origin and the note
// verifier keys (Ed25519, then ML-DSA-44) of the log, nil without one.
func (s *Server) logInfo() *api.LogInfo {
	if s.tlog == nil {
		return nil
	}
	return &api.LogInfo{Origin: s.tlog.log.Origin(), PublicKeys: s.tlog.log.VerifierKeys()}
}
