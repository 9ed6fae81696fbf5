package commandcli

import (
	"flag"
	"fmt"
	"time"

	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command"
)

func init() {
	register(
		&cmd{
			path: "org create", usage: "NAME [--require-admin-approval] [--require-admin-review] [--recovery-delay D] [--min-protection LEVEL] [--require-attestation] [--data DIR] [--db URL]",
			summary: "create an organisation and its admin credential",
			help: `Creates an organisation on the server's data (it works while the server runs):
its admin key is generated in Command's keystore (DataDir/keystore), never in
the database; its admin token is printed once and stored only hashed. Keep it
secret; give it to enigm-command admin in $ENIGM_ADMIN_TOKEN or a file.

The policy is written into the genesis of every account the organisation
invites: --require-admin-approval makes every enrollment wait for the admin,
--require-admin-review makes every recovery wait for the admin, and
--min-protection refuses devices below a protection level (software,
hardware-tpm, hardware-pkcs11, hardware-platform).

examples:
  enigm-command org create acme --json
  enigm-command org create acme --require-admin-approval --require-admin-review --recovery-delay 48h --min-protection hardware-tpm`,
			args: 1,
			flags: func(fs *flag.FlagSet) {
				dataFlags(fs)
				fs.Bool("require-admin-approval", false, "enrollments need the organisation's approval")
				fs.Bool("require-admin-review", false, "recoveries need the organisation's review")
				fs.Bool("require-attestation", false, "devices must carry attestation evidence the server's verifier accepts (serve --trust-tpm-ak)")
				fs.Duration("recovery-delay", chain.DefaultRecoveryDelay, "recovery waiting period of the organisation's accounts")
				fs.String("min-protection", "", "lowest device protection `LEVEL` (software, hardware-tpm, hardware-pkcs11, hardware-platform)")
			},
			run: runOrgCreate,
		},
		&cmd{
			path: "org invite", usage: "ORG --account NAME [--ttl D] [--data DIR] [--db URL]",
			summary: "invite an account name into an organisation",
			help: `Prints an invite code for the account name (ORG is the organisation's id or
name). The new user's first device runs
  enigm init --account NAME --org ORG_ID --invite CODE
The code is shown once and stored only hashed; it works once, until it expires.

examples:
  enigm-command org invite acme --account alice --json
  enigm-command org invite 3f1c…e2 --account bob --ttl 24h`,
			args: 1,
			flags: func(fs *flag.FlagSet) {
				dataFlags(fs)
				fs.String("account", "", "the invited account `NAME` (required)")
				fs.Duration("ttl", command.DefaultInviteTTL, "how long the invite is valid")
			},
			run: runOrgInvite,
		},
	)
}

func runOrgCreate(c *ctx) error {
	d := c.duration("recovery-delay")
	if d < 0 || d%time.Second != 0 {
		return usagef("--recovery-delay must be whole seconds, not negative")
	}
	spec := command.OrgSpec{Name: c.args[0], Policy: command.Policy{
		RequireAdminApproval:       c.boolean("require-admin-approval"),
		RequireAdminReview:         c.boolean("require-admin-review"),
		RecoveryDelaySeconds:       int64(d / time.Second),
		MinLevel:                   c.str("min-protection"),
		RequireVerifiedAttestation: c.boolean("require-attestation"),
	}}
	o, err := command.CreateOrg(c, c.dataConfig(), spec)
	if err != nil {
		return err
	}
	if c.json {
		writeJSON(c.Stdout, map[string]any{"version": 1, "org_id": o.ID, "name": o.Name, "admin_token": o.AdminToken,
			"admin_key": o.AdminKey.String(), "policy": o.Policy})
		return nil
	}
	fmt.Fprintf(c.Stdout, "organisation %q created\n  org id:      %s\n  admin key:   %s\n  admin token: %s\n\nThe admin token is shown once: keep it secret (ENIGM_ADMIN_TOKEN or --token-file).\n",
		o.Name, o.ID, o.AdminKey, o.AdminToken)
	return nil
}

func runOrgInvite(c *ctx) error {
	if c.str("account") == "" {
		return usagef("--account NAME is required")
	}
	inv, err := command.CreateInvite(c, c.dataConfig(), c.args[0], c.str("account"), c.duration("ttl"))
	if err != nil {
		return err
	}
	if c.json {
		writeJSON(c.Stdout, map[string]any{"version": 1, "invite_code": inv.Code, "org_id": inv.OrgID, "account": inv.AccountName,
			"expires_at": inv.ExpiresAt.UTC().Format(time.RFC3339)})
		return nil
	}
	fmt.Fprintf(c.Stdout, "invite for %q (expires %s):\n  %s\n\nOn the new device: enigm init --account %s --org %s --invite %s\n",
		inv.AccountName, inv.ExpiresAt.UTC().Format(time.RFC3339), inv.Code, inv.AccountName, inv.OrgID, inv.Code)
	return nil
}
