package enigmcli

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/device"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/translog"
)

// logOpts are the transparency-log flags of the commands that set up a
// device (init, enroll, replace, recover) and of `log configure`.
type logOpts struct {
	keys       []string
	origin     string
	policyFile string
	maxAge     time.Duration
}

// logFlags binds --log-key, --log-origin, --log-policy and --log-max-age.
func (c *Ctx) logFlags(fs *pflag.FlagSet, o *logOpts) {
	fs.StringArrayVar(&o.keys, "log-key", nil, "pin the transparency log's verifier `VKEY` (repeatable: give both lines `enigm-command log public-key` prints) instead of trusting the server's at first contact")
	fs.StringVar(&o.origin, "log-origin", "", "the log's `ORIGIN` (default: the key name of --log-key)")
	fs.StringVar(&o.policyFile, "log-policy", "", "witness policy `FILE` (c2sp.org/tlog-policy: witness, group and quorum lines; log lines pin the log)")
	fs.DurationVar(&o.maxAge, "log-max-age", 0, "refuse checkpoints whose witness quorum is older than this (default 1h when the policy requires a witness)")
}

// logHelp is the paragraph the device-setup commands add to their help.
const logHelp = `
The transparency log: every chain link this device accepts must be in
Command's log, under a checkpoint signed by the log's keys and consistent
with every checkpoint this device saw before (a rollback or fork is
refused). By default the keys are those the server advertises at first
contact; pin them instead with --log-key (both keys, from
` + "`enigm-command log public-key`" + ` run by the operator) or with the log lines of
a --log-policy file. A policy's quorum line requires witness cosignatures
(c2sp.org/tlog-cosignature) on every checkpoint, no older than
--log-max-age (default 1h). ` + "`enigm log status`" + ` shows what is in force.`

// set reports whether any log flag was given.
func (o *logOpts) set() bool {
	return len(o.keys) > 0 || o.origin != "" || o.policyFile != "" || o.maxAge != 0
}

// config builds the device.LogConfig of the flags.
func (o *logOpts) config(c *Ctx) (device.LogConfig, error) {
	var lc device.LogConfig
	if o.maxAge < 0 {
		return lc, Usagef("--log-max-age must not be negative")
	}
	lc.MaxAge = o.maxAge
	if o.origin != "" && len(o.keys) == 0 {
		return lc, Usagef("--log-origin needs --log-key")
	}
	if len(o.keys) > 0 {
		origin := o.origin
		if origin == "" {
			origin, _, _ = strings.Cut(o.keys[0], "+")
		}
		for _, k := range o.keys {
			if name, _, _ := strings.Cut(k, "+"); name != origin {
				return lc, Usagef("--log-key %q is named %q, not the log's origin %q: give the keys `enigm-command log public-key` prints (with the serve's --log-origin)", abbrev(k), name, origin)
			}
		}
		lc.Pin = &client.LogPin{Origin: origin, PublicKeys: o.keys}
	}
	if o.policyFile != "" {
		b, err := c.ReadInput(o.policyFile, translog.MaxPolicySize)
		if err != nil {
			return lc, fmt.Errorf("reading the log policy %s: %w", o.policyFile, err)
		}
		lc.Policy = string(b)
	}
	if _, _, err := device.ParseLogConfig(lc); err != nil {
		return lc, err
	}
	return lc, nil
}

// prepare checks the log flags before anything is opened: nil when none
// was given.
func (o *logOpts) prepare(c *Ctx) (*device.LogConfig, error) {
	if !o.set() {
		return nil, nil
	}
	lc, err := o.config(c)
	return &lc, err
}

// applyLog configures a device being set up with lc (none when nil).
func applyLog(a *device.Agent, lc *device.LogConfig) error {
	if lc == nil {
		return nil
	}
	return a.ConfigureLog(*lc)
}

// agentWithLog opens the agent of a device being set up (init, enroll,
// replace, recover) configured with the log flags, checked before
// anything is opened.
func (c *Ctx) agentWithLog(o *logOpts) (*device.Agent, error) {
	lc, err := o.prepare(c)
	if err != nil {
		return nil, err
	}
	a, err := c.agent()
	if err != nil {
		return nil, err
	}
	if err := applyLog(a, lc); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func init() {
	register(
		func(c *Ctx) *clikit.Command {
			o := &logOpts{}
			return &clikit.Command{Path: "log configure", Summary: "pin the transparency log and set the witness policy", Usage: "[--log-key VKEY]... [--log-policy FILE] [--log-max-age D]",
				Help: `Sets what this device requires of Command's transparency log from now on
(init, enroll, replace and recover take the same flags). A device never
moves to another log: keys unlike the ones it follows are refused.
` + logHelp + `

examples:
  enigm log configure --log-key "$(sed -n 1p log.keys)" --log-key "$(sed -n 2p log.keys)"
  enigm log configure --log-policy witnesses.policy --log-max-age 30m`,
				Flags: func(fs *pflag.FlagSet) { c.logFlags(fs, o) },
				Run: c.do(func(c *Ctx) error {
					if !o.set() {
						return Usagef("give --log-key, --log-policy or --log-max-age")
					}
					lc, err := o.prepare(c)
					if err != nil {
						return err
					}
					a, err := c.agent()
					if err != nil {
						return err
					}
					defer a.Close()
					// What is not given stays as configured.
					old, err := a.LogConfig()
					if err != nil {
						return err
					}
					if lc.Pin == nil {
						lc.Pin = old.Pin
					}
					if o.policyFile == "" {
						lc.Policy = old.Policy
					}
					if o.maxAge == 0 {
						lc.MaxAge = old.MaxAge
					}
					if err := applyLog(a, lc); err != nil {
						return err
					}
					return runLogStatus(c, a)
				})}
		},
		func(c *Ctx) *clikit.Command {
			return &clikit.Command{Path: "log status", Summary: "show the transparency log this device follows", Usage: "[--json]",
				Help: `Shows the log this device follows (origin and keys), the newest checkpoint it
verified, the witness policy and maximum age in force, and the checkpoints it
refused (a rollback, a fork, missing or stale witness cosignatures), which it
keeps as evidence.

example:
  enigm log status --json`,
				Run: c.do(withAgent(runLogStatus))}
		},
	)
	words["log"] = clikit.Word{Group: "account", Summary: "the transparency log this device follows"}
}

// logStatusJSON is `log status --json`.
type logStatusJSON struct {
	Origin     string           `json:"origin,omitempty"`
	PublicKeys []string         `json:"public_keys"`
	Pinned     bool             `json:"pinned"` // configured, not trusted on first use
	Size       uint64           `json:"size"`
	RootHash   string           `json:"root_hash,omitempty"`
	Quorum     string           `json:"quorum"`
	Witnesses  []logWitnessJSON `json:"witnesses"`
	MaxAge     string           `json:"max_age,omitempty"`
	Refused    []refusedLogJSON `json:"refused"`
}

type logWitnessJSON struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type refusedLogJSON struct {
	At     string `json:"at"`
	Reason string `json:"reason"`
}

func runLogStatus(c *Ctx, a *device.Agent) error {
	lc, err := a.LogConfig()
	if err != nil {
		return err
	}
	pin, pol, err := device.ParseLogConfig(lc)
	if err != nil {
		return err
	}
	st, err := a.LogState()
	if err != nil {
		return err
	}
	refused, err := a.RefusedCheckpoints()
	if err != nil {
		return err
	}
	j := logStatusJSON{PublicKeys: []string{}, Witnesses: []logWitnessJSON{}, Refused: []refusedLogJSON{}, Quorum: translog.PolicyNone, Pinned: pin != nil}
	if pin != nil {
		j.Origin, j.PublicKeys = pin.Origin, pin.PublicKeys
	}
	if st != nil {
		j.Origin, j.PublicKeys, j.Size, j.RootHash = st.Origin, st.PublicKeys, st.Size, hex.EncodeToString(st.Hash)
	}
	if pol != nil {
		j.Quorum = pol.Quorum
		for _, w := range pol.Witnesses {
			j.Witnesses = append(j.Witnesses, logWitnessJSON{Name: w.Name, Key: w.Key})
		}
		if pol.RequiresWitnesses() {
			age := lc.MaxAge
			if age == 0 {
				age = client.DefaultMaxCheckpointAge
			}
			j.MaxAge = age.String()
		}
	}
	for _, r := range refused {
		j.Refused = append(j.Refused, refusedLogJSON{At: ts(r.At), Reason: r.Reason})
	}
	return c.Output(j, func() {
		switch {
		case j.Origin == "":
			c.Printf("log:        none yet (the keys the server advertises are pinned at the first sync)\n")
		default:
			how := "trusted at first contact"
			if j.Pinned {
				how = "pinned"
			}
			c.Printf("log:        %s (%s)\n", j.Origin, how)
			for _, k := range j.PublicKeys {
				c.Printf("  key:      %s\n", abbrev(k))
			}
		}
		if st != nil {
			c.Printf("checkpoint: %d leaves, root %s\n", j.Size, j.RootHash)
		}
		c.Printf("witnesses:  quorum %s\n", j.Quorum)
		for _, w := range j.Witnesses {
			c.Printf("  witness:  %s %s\n", w.Name, abbrev(w.Key))
		}
		if j.MaxAge != "" {
			c.Printf("max age:    %s\n", j.MaxAge)
		}
		if len(j.Refused) > 0 {
			c.Printf("refused checkpoints (kept as evidence): %d\n", len(j.Refused))
			for _, r := range j.Refused {
				c.Printf("  %s  %s\n", r.At, r.Reason)
			}
		}
	})
}
