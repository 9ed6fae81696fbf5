package commandcli

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/internal/clikit"
)

type orgCreateOpts struct {
	requireAdminApproval, requireAdminReview, requireAttestation bool
	recoveryDelay, witnessMaxAge                                 time.Duration
	minProtection, witnessPolicy                                 string
}

func init() {
	register(
		func(c *ctx) *clikit.Command {
			o := &orgCreateOpts{}
			return &clikit.Command{
				Path: "org create", Usage: "NAME [--require-admin-approval] [--require-admin-review] [--recovery-delay D] [--min-protection LEVEL] [--require-attestation] [--witness-policy FILE [--witness-max-age D]] [--data DIR] [--db URL]",
				Summary: "create an organisation and its admin credential",
				Help: `Creates an organisation on the server's data (it works while the server runs):
its admin key is generated in Command's keystore (DataDir/keystore), never in
the database; its admin token is printed once and stored only hashed. Keep it
secret; give it to enigm-command admin in $ENIGM_ADMIN_TOKEN or a file.

The policy is written into the genesis of every account the organisation
invites: --require-admin-approval makes every enrollment wait for the admin,
--require-admin-review makes every recovery wait for the admin, and
--min-protection refuses devices below a protection level (software,
hardware-tpm, hardware-pkcs11, hardware-platform).

` + witnessPolicyHelp + `
Change it later for one account with enigm-command admin set-policy.

examples:
  enigm-command org create acme --json
  enigm-command org create acme --require-admin-approval --require-admin-review --recovery-delay 48h --min-protection hardware-tpm
  enigm-command org create acme --witness-policy witnesses.policy --witness-max-age 30m`,
				Args: 1,
				Flags: func(fs *pflag.FlagSet) {
					fs.BoolVar(&o.requireAdminApproval, "require-admin-approval", false, "enrollments need the organisation's approval")
					fs.BoolVar(&o.requireAdminReview, "require-admin-review", false, "recoveries need the organisation's review")
					fs.BoolVar(&o.requireAttestation, "require-attestation", false, "devices must carry attestation evidence the server's verifier accepts (serve --trust-tpm-ak)")
					fs.DurationVar(&o.recoveryDelay, "recovery-delay", chain.DefaultRecoveryDelay, "recovery waiting period of the organisation's accounts")
					fs.StringVar(&o.minProtection, "min-protection", "", "lowest device protection `LEVEL` (software, hardware-tpm, hardware-pkcs11, hardware-platform)")
					fs.StringVar(&o.witnessPolicy, "witness-policy", "", "the organisation's witness policy: a c2sp.org/tlog-policy `FILE`")
					fs.DurationVar(&o.witnessMaxAge, "witness-max-age", 0, "bound on the age of the witness quorum's cosignatures (0: the devices' own)")
				},
				Run: c.do(func(c *ctx) error { return runOrgCreate(c, o) }),
			}
		},
		func(c *ctx) *clikit.Command {
			var account string
			var ttl time.Duration
			return &clikit.Command{
				Path: "org invite", Usage: "ORG --account NAME [--ttl D] [--data DIR] [--db URL]",
				Summary: "invite an account name into an organisation",
				Help: `Prints an invite code for the account name (ORG is the organisation's id or
name). The new user's first device runs
  enigm init --account NAME --org ORG_ID --invite CODE
The code is shown once and stored only hashed; it works once, until it expires.

examples:
  enigm-command org invite acme --account alice --json
  enigm-command org invite 3f1c…e2 --account bob --ttl 24h`,
				Args: 1,
				Flags: func(fs *pflag.FlagSet) {
					fs.StringVar(&account, "account", "", "the invited account `NAME` (required)")
					fs.DurationVar(&ttl, "ttl", command.DefaultInviteTTL, "how long the invite is valid")
				},
				Run: c.do(func(c *ctx) error { return runOrgInvite(c, account, ttl) }),
			}
		},
	)
}

// orgJSON is `org create --json`.
type orgJSON struct {
	OrgID      string         `json:"org_id"`
	Name       string         `json:"name"`
	AdminToken string         `json:"admin_token"`
	AdminKey   string         `json:"admin_key"`
	Policy     command.Policy `json:"policy"`
}

// inviteJSON is `org invite --json`.
type inviteJSON struct {
	InviteCode string `json:"invite_code"`
	OrgID      string `json:"org_id"`
	Account    string `json:"account"`
	ExpiresAt  string `json:"expires_at"`
}

func runOrgCreate(c *ctx, o *orgCreateOpts) error {
	d := o.recoveryDelay
	if d < 0 || d%time.Second != 0 {
		return usagef("--recovery-delay must be whole seconds, not negative")
	}
	spec := command.OrgSpec{Name: c.args[0], Policy: command.Policy{
		RequireAdminApproval:       o.requireAdminApproval,
		RequireAdminReview:         o.requireAdminReview,
		RecoveryDelaySeconds:       int64(d / time.Second),
		MinLevel:                   o.minProtection,
		RequireVerifiedAttestation: o.requireAttestation,
	}}
	if o.witnessPolicy != "" {
		text, err := readWitnessPolicy(o.witnessPolicy)
		if err != nil {
			return err
		}
		spec.Policy.WitnessPolicy = text
	}
	secs, err := witnessMaxAge(o.witnessMaxAge)
	if err != nil {
		return err
	}
	if secs != 0 && o.witnessPolicy == "" {
		return usagef("--witness-max-age needs --witness-policy")
	}
	spec.Policy.WitnessMaxAgeSeconds = secs
	org, err := command.CreateOrg(c, c.dataConfig(), spec)
	if err != nil {
		return err
	}
	if c.json {
		writeJSON(c.Stdout, orgJSON{OrgID: org.ID, Name: org.Name, AdminToken: org.AdminToken, AdminKey: org.AdminKey.String(), Policy: org.Policy})
		return nil
	}
	fmt.Fprintf(c.Stdout, "organisation %q created\n  org id:      %s\n  admin key:   %s\n  admin token: %s\n\nThe admin token is shown once: keep it secret (ENIGM_ADMIN_TOKEN or --token-file).\n",
		org.Name, org.ID, org.AdminKey, org.AdminToken)
	return nil
}

func runOrgInvite(c *ctx, account string, ttl time.Duration) error {
	if account == "" {
		return usagef("--account NAME is required")
	}
	inv, err := command.CreateInvite(c, c.dataConfig(), c.args[0], account, ttl)
	if err != nil {
		return err
	}
	if c.json {
		writeJSON(c.Stdout, inviteJSON{InviteCode: inv.Code, OrgID: inv.OrgID, Account: inv.AccountName, ExpiresAt: inv.ExpiresAt.UTC().Format(time.RFC3339)})
		return nil
	}
	fmt.Fprintf(c.Stdout, "invite for %q (expires %s):\n  %s\n\nOn the new device: enigm init --account %s --org %s --invite %s\n",
		inv.AccountName, inv.ExpiresAt.UTC().Format(time.RFC3339), inv.Code, inv.AccountName, inv.OrgID, inv.Code)
	return nil
}
