package enigmcli

import (
	"errors"
	"fmt"
	"time"

	"github.com/enigm/enigm/keystore"
)

// auditVerifyJSON is `enigm audit --verify --json`.
type auditVerifyJSON struct {
	Intact   bool   `json:"intact"`
	From     uint64 `json:"from"`
	Head     uint64 `json:"head"`
	Entries  uint64 `json:"entries"`
	Segments int    `json:"segments"`
	// PrunedThrough is the newest entry deleted by retention (0: none).
	PrunedThrough uint64 `json:"pruned_through,omitempty"`
	PrunedAt      string `json:"pruned_at,omitempty"`
	Problem       string `json:"problem,omitempty"`
}

func runAuditVerify(c *Ctx, s *keystore.Store) error {
	v, err := s.VerifyAudit()
	if err != nil {
		return err
	}
	out := auditVerifyJSON{Intact: v.Intact, From: v.From, Head: v.Head, Entries: v.Entries, Segments: v.Segments,
		PrunedThrough: v.PrunedThrough, Problem: v.Problem}
	if v.PrunedThrough > 0 {
		out.PrunedAt = v.PrunedAt.UTC().Format(time.RFC3339)
	}
	err = c.Output(out, func() {
		if v.Intact {
			c.Printf("audit log intact: entries %d-%d verified (%d sealed segments and the active file)\n", v.From, v.Head, v.Segments)
		} else {
			c.Printf("AUDIT LOG BROKEN: %s\n", v.Problem)
		}
		if u := v.Unverifiable(); u != "" {
			c.Printf("note: %s\n", u)
		}
	})
	if err == nil && !v.Intact {
		return errors.New("the audit log failed verification")
	}
	return err
}

// auditPruneJSON is `enigm audit prune --json`.
type auditPruneJSON struct {
	Segments int    `json:"segments"`
	Through  uint64 `json:"through"`
}

func runAuditPrune(c *Ctx, olderThan time.Duration) error {
	if olderThan <= 0 {
		return Usagef("--older-than DURATION is required and must be positive (e.g. 2160h for 90 days)")
	}
	s, err := c.openStore(false)
	if err != nil {
		return err
	}
	defer s.Close()
	now := time.Now
	if c.Env.Now != nil {
		now = c.Env.Now
	}
	before := now().Add(-olderThan)
	if err := c.Confirm(fmt.Sprintf("delete the audit segments sealed before %s? their entries can no longer be checked", before.UTC().Format(time.RFC3339))); err != nil {
		return err
	}
	p, err := s.PruneAudit(before)
	if err != nil {
		return err
	}
	return c.Output(auditPruneJSON{Segments: p.Segments, Through: p.Through}, func() {
		if p.Segments == 0 {
			c.Printf("no sealed segment is older than %s; nothing deleted\n", olderThan)
			return
		}
		c.Printf("deleted %d sealed segments: entries up to %d can no longer be checked\n", p.Segments, p.Through)
	})
}
