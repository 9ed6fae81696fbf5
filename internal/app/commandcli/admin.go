package commandcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/translog"
)

// DefaultServer is where the admin client goes without --server or
// $ENIGM_SERVER.
const DefaultServer = "http://127.0.0.1:8470"

const adminHelpCommon = `The admin credential comes from $ENIGM_ADMIN_TOKEN or --token-file (never a
flag value). --server defaults to $ENIGM_SERVER, then ` + DefaultServer + `.
The admin changes lifecycle state; it never sees or handles a device key.`

// adminFlags binds --server and --token-file, which every admin command
// takes, before or after its name.
func (c *ctx) adminFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.adm.server, "server", "", "Command `URL` (default $ENIGM_SERVER, then "+DefaultServer+")")
	fs.StringVar(&c.adm.tokenFile, "token-file", "", "read the admin token from `FILE` (default $ENIGM_ADMIN_TOKEN)")
}

// adminCmd is an admin command with options O (flags beyond --server and
// --token-file), made anew for each run.
func adminCmd[O any](path, usage, summary, help string, args int, flags func(fs *pflag.FlagSet, o *O), run func(c *ctx, o *O) error) func(c *ctx) *clikit.Command {
	return func(c *ctx) *clikit.Command {
		o := new(O)
		var fl func(fs *pflag.FlagSet)
		if flags != nil {
			fl = func(fs *pflag.FlagSet) { flags(fs, o) }
		}
		return &clikit.Command{Path: path, Usage: usage, Summary: summary, Help: help, Args: args, Flags: fl,
			Run: c.do(func(c *ctx) error { return run(c, o) })}
	}
}

// noOpts: an admin command without flags of its own.
type noOpts struct{}

func plain(run func(c *ctx) error) func(*ctx, *noOpts) error {
	return func(c *ctx, _ *noOpts) error { return run(c) }
}

type revokeOpts struct {
	reason string
	yes    bool
}

type setPolicyOpts struct {
	requireAdminApproval, requireAdminReview, requireAttestation optBool
	recoveryDelay, witnessMaxAge                                 optDuration
	minProtection, witnessPolicy                                 optString
	noWitnessPolicy                                              bool
}

type reviewOpts struct {
	approve, deny bool
	reason        string
}

type auditOpts struct{ limit, after int }

func init() {
	register(
		adminCmd[noOpts]("admin accounts", "[--json]", "list the organisation's accounts",
			adminHelpCommon+"\n\nexample:\n  ENIGM_ADMIN_TOKEN=eat_… enigm-command admin accounts", 0, nil, plain(runAdminAccounts)),
		adminCmd[noOpts]("admin enrollments", "[--json]", "list enrollment requests awaiting the organisation",
			adminHelpCommon+"\n\nexample:\n  enigm-command admin enrollments --token-file admin.token --json", 0, nil, plain(runAdminEnrollments)),
		adminCmd[noOpts]("admin approve", "REQUEST_ID [--json]", "approve an enrollment request for the organisation",
			"Command signs the organisation's approval of the request, against the same\nchain head the approving device signed. The new device then completes it.\n\n"+
				adminHelpCommon+"\n\nexample:\n  enigm-command admin approve 6f1e0c2a9b8d7e6f5a4b3c2d1e0f9a8b", 1, nil, plain(runAdminApprove)),
		adminCmd("admin deny", "REQUEST_ID [--reason R] [--json]", "deny an enrollment request",
			adminHelpCommon+"\n\nexample:\n  enigm-command admin deny 6f1e0c2a9b8d7e6f5a4b3c2d1e0f9a8b --reason \"unknown laptop\"", 1,
			func(fs *pflag.FlagSet, reason *string) {
				fs.StringVar(reason, "reason", "", "why (recorded in the audit log)")
			},
			func(c *ctx, reason *string) error { return runAdminDeny(c, *reason) }),
		adminCmd("admin revoke", "ACCOUNT DEVICE [--reason R] [--yes] [--json]", "revoke a device of an organisation account",
			"Command builds a revoke_device link, signs it with the organisation key and\nappends it. The device is cut off at once: its requests fail with\ndevice_revoked, its queued envelopes are deleted, and nothing is sent to it.\nAsks for confirmation unless --yes. ACCOUNT is the account's id or name,\nDEVICE the device's id, a unique prefix of at least 6 hex digits, or name.\n\n"+
				adminHelpCommon+"\n\nexamples:\n  enigm-command admin revoke 9c4e…21 5b0a…7f --reason lost --yes\n  enigm-command admin revoke alice laptop --yes", 2,
			func(fs *pflag.FlagSet, o *revokeOpts) {
				fs.StringVar(&o.reason, "reason", "", "why (recorded in the audit log)")
				fs.BoolVar(&o.yes, "yes", false, "do not ask for confirmation")
			}, runAdminRevoke),
		adminCmd("admin set-policy", "ACCOUNT [--require-admin-approval[=false]] [--require-admin-review[=false]] [--recovery-delay D] [--min-protection LEVEL] [--require-attestation[=false]] [--witness-policy FILE | --no-witness-policy] [--witness-max-age D] [--json]",
			"change a managed account's policy (a set_policy link signed by the organisation)",
			"Changes only the settings whose flags are given; the others keep their current\nvalue (turn a setting off with --flag=false). Prints the policy before and\nafter. Command signs a set_policy link with the organisation key; every\ndevice verifies it. ACCOUNT is the account's id or name.\n\n"+
				witnessPolicyHelp+"\n\n"+
				adminHelpCommon+"\n\nexamples:\n  enigm-command admin set-policy 9c4e…21 --recovery-delay 72h\n  enigm-command admin set-policy alice --require-admin-approval=false --min-protection hardware-tpm\n  enigm-command admin set-policy alice --witness-policy witnesses.policy --witness-max-age 30m", 1,
			func(fs *pflag.FlagSet, o *setPolicyOpts) {
				boolFlag(fs, &o.requireAdminApproval, "require-admin-approval", "new devices need the organisation's approval")
				boolFlag(fs, &o.requireAdminReview, "require-admin-review", "recoveries need the organisation's review")
				fs.Var(&o.recoveryDelay, "recovery-delay", "recovery waiting period")
				fs.Var(&o.minProtection, "min-protection", "lowest device protection `LEVEL`")
				boolFlag(fs, &o.requireAttestation, "require-attestation", "devices must carry verified attestation evidence")
				fs.Var(&o.witnessPolicy, "witness-policy", "the witness policy: a c2sp.org/tlog-policy `FILE`")
				fs.BoolVar(&o.noWitnessPolicy, "no-witness-policy", false, "remove the witness policy (and its maximum age)")
				fs.Var(&o.witnessMaxAge, "witness-max-age", "bound on the age of the witness quorum's cosignatures (0: the devices' own)")
			}, runAdminSetPolicy),
		adminCmd[noOpts]("admin recoveries", "[--json]", "list the organisation's recoveries",
			adminHelpCommon+"\n\nexample:\n  enigm-command admin recoveries --json", 0, nil, plain(runAdminRecoveries)),
		adminCmd("admin review", "RECOVERY_ID --approve|--deny [--reason R] [--json]", "approve or deny a recovery awaiting review",
			"Approving counter-signs the recovering device's recover link and appends it;\ndenying closes the recovery.\n\n"+
				adminHelpCommon+"\n\nexamples:\n  enigm-command admin review 8e2f…c1 --approve\n  enigm-command admin review 8e2f…c1 --deny --reason \"not requested by the user\"", 1,
			func(fs *pflag.FlagSet, o *reviewOpts) {
				fs.BoolVar(&o.approve, "approve", false, "approve the recovery")
				fs.BoolVar(&o.deny, "deny", false, "deny the recovery")
				fs.StringVar(&o.reason, "reason", "", "why (recorded in the audit log)")
			}, runAdminReview),
		adminCmd[noOpts]("admin devices", "ACCOUNT [--json]", "list an account's devices",
			adminHelpCommon+"\n\nexamples:\n  enigm-command admin devices 9c4e…21 --json\n  enigm-command admin devices alice", 1, nil, plain(runAdminDevices)),
		adminCmd("admin audit", "[--limit N] [--after ID] [--json]", "show the organisation's audit log",
			adminHelpCommon+"\n\nexample:\n  enigm-command admin audit --limit 20", 0,
			func(fs *pflag.FlagSet, o *auditOpts) {
				fs.IntVar(&o.limit, "limit", 100, "at most `N` entries (1-1000)")
				fs.IntVar(&o.after, "after", 0, "entries after this `ID`")
			}, runAdminAudit),
	)
}

// Optional flag values: set records whether the flag was given, so that
// set-policy changes only what was asked.
type optBool struct{ v, set bool }

func (o *optBool) String() string   { return strconv.FormatBool(o.v) }
func (o *optBool) Type() string     { return "bool" }
func (o *optBool) IsBoolFlag() bool { return true }
func (o *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	o.v, o.set = v, true
	return nil
}

// boolFlag binds a bool flag that also takes --flag=false.
func boolFlag(fs *pflag.FlagSet, o *optBool, name, usage string) {
	fs.Var(o, name, usage)
	fs.Lookup(name).NoOptDefVal = "true"
}

type optDuration struct {
	v   time.Duration
	set bool
}

func (o *optDuration) String() string { return o.v.String() }
func (o *optDuration) Type() string   { return "duration" }
func (o *optDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	o.v, o.set = v, true
	return nil
}

type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Type() string       { return "string" }
func (o *optString) Set(s string) error { o.v, o.set = s, true; return nil }

type adminClient struct {
	server string
	token  string
	hc     *http.Client
}

// apiError is an error answer of the server.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("server: %s (%d %s)", e.Message, e.Status, e.Code)
}

func (c *ctx) admin() (*adminClient, error) {
	server := c.adm.server
	if server == "" {
		server = c.Getenv("ENIGM_SERVER")
	}
	if server == "" {
		server = DefaultServer
	}
	u, err := client.ParseServerURL(server)
	if err != nil {
		// The admin token is a bearer token: plain http:// only to this
		// machine.
		return nil, usagef("--server: %v", err)
	}
	tok := ""
	if f := c.adm.tokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading the admin token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	} else {
		tok = strings.TrimSpace(c.Getenv("ENIGM_ADMIN_TOKEN"))
	}
	if tok == "" {
		return nil, usagef("no admin token: set ENIGM_ADMIN_TOKEN or pass --token-file FILE")
	}
	return &adminClient{server: u.String(), token: tok, hc: client.HTTPClient(&http.Client{Timeout: 60 * time.Second})}, nil
}

func (a *adminClient) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reaching Command at %s: %w", a.server, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		if json.Unmarshal(b, &e) != nil || e.Validate() != nil {
			return &apiError{Status: resp.StatusCode, Code: "http", Message: strings.TrimSpace(string(b))}
		}
		return &apiError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("malformed answer from Command: %w", err)
	}
	if v, ok := out.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("malformed answer from Command: %w", err)
		}
	}
	return nil
}

// account resolves ref, an account id or name, among the organisation's
// accounts.
func (a *adminClient) account(ref string) (string, error) {
	if isHex(ref, 32) {
		return ref, nil
	}
	var out api.AccountList
	if err := a.do("GET", "/v1/admin/accounts", nil, &out); err != nil {
		return "", err
	}
	cands := make([]clikit.Candidate, len(out.Accounts))
	for i, x := range out.Accounts {
		cands[i] = clikit.Candidate{ID: x.AccountID, Name: x.Name}
	}
	return clikit.PickID("account", ref, cands)
}

// adminAccount opens the admin client and resolves the command's first
// argument, an account id or name.
func (c *ctx) adminAccount() (*adminClient, string, error) {
	a, err := c.admin()
	if err != nil {
		return nil, "", err
	}
	acct, err := a.account(c.args[0])
	return a, acct, err
}

// device resolves ref, a device id, a unique prefix of at least 6 hex
// digits of one, or a device name, among the account's devices.
func (a *adminClient) device(acct, ref string) (string, error) {
	if isHex(ref, 16) {
		return ref, nil
	}
	var out api.DeviceList
	if err := a.do("GET", "/v1/admin/accounts/"+acct+"/devices", nil, &out); err != nil {
		return "", err
	}
	cands := make([]clikit.Candidate, len(out.Devices))
	for i, x := range out.Devices {
		cands[i] = clikit.Candidate{ID: x.DeviceID, Name: x.Name}
	}
	return clikit.PickID("device", ref, cands)
}

func isHex(s string, n int) bool { return api.IsHex(s, n) }

// adminDo makes one request of the admin API and returns its answer, a T.
func adminDo[T any](c *ctx, method, path string, body any) (*T, error) {
	a, err := c.admin()
	if err != nil {
		return nil, err
	}
	out := new(T)
	if err := a.do(method, path, body, out); err != nil {
		return nil, err
	}
	return out, nil
}

// printRow prints cells as one tab-separated line of a table.
func printRow(w io.Writer, cells ...any) {
	for i, v := range cells {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, v)
	}
	fmt.Fprintln(w)
}

// printTable prints rows as a table under header, or the line empty when
// there are none.
func printTable[T any](w io.Writer, rows []T, empty string, header []any, row func(T) []any) {
	if len(rows) == 0 {
		fmt.Fprintln(w, empty)
		return
	}
	printRow(w, header...)
	for _, r := range rows {
		printRow(w, row(r)...)
	}
}

// mapAll returns f of each of xs, an empty (not nil) slice for none.
func mapAll[A, B any](xs []A, f func(A) B) []B {
	out := make([]B, 0, len(xs))
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

// output prints v (a typed struct; "version": 1 is added) as JSON, or
// calls text.
func (c *ctx) output(v any, text func(w io.Writer)) {
	if c.json {
		writeJSON(c.Stdout, v)
		return
	}
	tw := tabwriter.NewWriter(c.Stdout, 0, 4, 2, ' ', 0)
	text(tw)
	tw.Flush()
}

// enrollment and recovery are the --json output of the admin commands (the
// API's api.Enrollment and api.Recovery, fewer fields, times as text).
type enrollment struct {
	RequestID  string `json:"request_id"`
	AccountID  string `json:"account_id"`
	Type       string `json:"type"`
	State      string `json:"state"`
	DeviceID   string `json:"device_id"`
	DeviceName string `json:"device_name"`
	Protection string `json:"protection"`
	ExpiresAt  string `json:"expires_at"`
	Reason     string `json:"reason,omitempty"`
}

type recovery struct {
	RecoveryID  string `json:"recovery_id"`
	AccountID   string `json:"account_id"`
	DeviceID    string `json:"device_id"`
	State       string `json:"state"`
	RequestedAt string `json:"requested_at"`
	NotBefore   string `json:"not_before"`
	Reason      string `json:"reason,omitempty"`
}

func enrollmentOut(e api.Enrollment) enrollment {
	return enrollment{RequestID: e.RequestID, AccountID: e.AccountID, Type: e.Type, State: e.State, DeviceID: e.DeviceID,
		DeviceName: e.DeviceName, Protection: e.Protection, ExpiresAt: apiTime(e.ExpiresAt), Reason: e.Reason}
}

func recoveryOut(r api.Recovery) recovery {
	return recovery{RecoveryID: r.RecoveryID, AccountID: r.AccountID, DeviceID: r.DeviceID, State: r.State,
		RequestedAt: apiTime(r.RequestedAt), NotBefore: apiTime(r.NotBefore), Reason: r.Reason}
}

// apiTime prints a time of the API as it travels (RFC 3339 UTC).
func apiTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func runAdminAccounts(c *ctx) error {
	out, err := adminDo[api.AccountList](c, "GET", "/v1/admin/accounts", nil)
	if err != nil {
		return err
	}
	type row struct {
		AccountID string `json:"account_id"`
		Name      string `json:"name"`
		HeadSeq   uint64 `json:"head_seq"`
	}
	rows := []row{}
	for _, x := range out.Accounts {
		rows = append(rows, row{x.AccountID, x.Name, x.Head.Seq})
	}
	c.output(struct {
		Accounts []row `json:"accounts"`
	}{rows}, func(w io.Writer) {
		printRow(w, "NAME", "ACCOUNT ID", "HEAD")
		for _, r := range rows {
			printRow(w, r.Name, r.AccountID, r.HeadSeq)
		}
	})
	return nil
}

func runAdminEnrollments(c *ctx) error {
	list, err := adminDo[api.EnrollmentList](c, "GET", "/v1/admin/enrollments", nil)
	if err != nil {
		return err
	}
	out := struct{ Enrollments []enrollment }{mapAll(list.Enrollments, enrollmentOut)}
	c.output(out, func(w io.Writer) {
		printTable(w, out.Enrollments, "no enrollment requests await the organisation",
			[]any{"REQUEST ID", "TYPE", "ACCOUNT", "DEVICE", "NAME", "PROTECTION", "EXPIRES"},
			func(e enrollment) []any {
				return []any{e.RequestID, e.Type, e.AccountID, e.DeviceID, e.DeviceName, e.Protection, e.ExpiresAt}
			})
	})
	return nil
}

func runAdminApprove(c *ctx) error {
	return adminEnrollmentAction(c, "approve", nil)
}

func runAdminDeny(c *ctx, reason string) error {
	return adminEnrollmentAction(c, "deny", &api.Reason{Reason: reason})
}

func adminEnrollmentAction(c *ctx, action string, body any) error {
	rid := c.args[0]
	if !isHex(rid, 16) {
		return usagef("REQUEST_ID is 32 lowercase hex digits")
	}
	e, err := adminDo[api.Enrollment](c, "POST", "/v1/admin/enrollments/"+rid+"/"+action, body)
	if err != nil {
		return err
	}
	c.output(struct {
		RequestID string `json:"request_id"`
		State     string `json:"state"`
		AccountID string `json:"account_id"`
		DeviceID  string `json:"device_id"`
	}{e.RequestID, e.State, e.AccountID, e.DeviceID}, func(w io.Writer) {
		fmt.Fprintf(w, "enrollment %s of device %s (%s) is now %s\n", e.RequestID, e.DeviceID, e.DeviceName, e.State)
	})
	return nil
}

func runAdminRevoke(c *ctx, o *revokeOpts) error {
	a, acct, err := c.adminAccount()
	if err != nil {
		return err
	}
	dev, err := a.device(acct, c.args[1])
	if err != nil {
		return err
	}
	if !o.yes {
		ok, err := c.confirm(fmt.Sprintf("Revoke device %s of account %s for good?", dev, acct))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not revoked")
		}
	}
	var out api.HeadResponse
	if err := a.do("POST", "/v1/admin/accounts/"+acct+"/revoke", &api.RevokeRequest{DeviceID: dev, Reason: o.reason}, &out); err != nil {
		return err
	}
	c.output(struct {
		AccountID string `json:"account_id"`
		DeviceID  string `json:"device_id"`
		Revoked   bool   `json:"revoked"`
		Head      any    `json:"head"`
	}{acct, dev, true, out.Head}, func(w io.Writer) {
		fmt.Fprintf(w, "device %s revoked (account %s, head %d)\n", dev, acct, out.Head.Seq)
	})
	return nil
}

func runAdminRecoveries(c *ctx) error {
	list, err := adminDo[api.RecoveryList](c, "GET", "/v1/admin/recoveries", nil)
	if err != nil {
		return err
	}
	out := struct{ Recoveries []recovery }{mapAll(list.Recoveries, recoveryOut)}
	c.output(out, func(w io.Writer) {
		printTable(w, out.Recoveries, "no recoveries", []any{"RECOVERY ID", "STATE", "ACCOUNT", "DEVICE", "NOT BEFORE"},
			func(r recovery) []any { return []any{r.RecoveryID, r.State, r.AccountID, r.DeviceID, r.NotBefore} })
	})
	return nil
}

func runAdminReview(c *ctx, o *reviewOpts) error {
	rid := c.args[0]
	if !isHex(rid, 32) {
		return usagef("RECOVERY_ID is 64 lowercase hex digits")
	}
	approve, deny := o.approve, o.deny
	if approve == deny {
		return usagef("pass exactly one of --approve and --deny")
	}
	r, err := adminDo[api.Recovery](c, "POST", "/v1/admin/recoveries/"+rid+"/review", &api.ReviewRequest{Approve: &approve, Reason: o.reason})
	if err != nil {
		return err
	}
	c.output(struct {
		RecoveryID string `json:"recovery_id"`
		State      string `json:"state"`
		AccountID  string `json:"account_id"`
		DeviceID   string `json:"device_id"`
	}{r.RecoveryID, r.State, r.AccountID, r.DeviceID}, func(w io.Writer) {
		fmt.Fprintf(w, "recovery %s of device %s is now %s\n", r.RecoveryID, r.DeviceID, r.State)
	})
	return nil
}

func runAdminDevices(c *ctx) error {
	a, acct, err := c.adminAccount()
	if err != nil {
		return err
	}
	var out api.DeviceList
	if err := a.do("GET", "/v1/admin/accounts/"+acct+"/devices", nil, &out); err != nil {
		return err
	}
	if out.Devices == nil {
		out.Devices = []api.Device{}
	}
	c.output(struct {
		AccountID string       `json:"account_id"`
		Head      any          `json:"head"`
		Devices   []api.Device `json:"devices"`
	}{acct, out.Head, out.Devices}, func(w io.Writer) {
		printRow(w, "DEVICE ID", "NAME", "STATE", "PROTECTION", "APPROVED BY", "ADDED")
		for _, d := range out.Devices {
			printRow(w, d.DeviceID, d.Name, d.State, d.Protection, d.ApprovedBy, apiTime(d.AddedAt))
		}
	})
	return nil
}

func runAdminAudit(c *ctx, o *auditOpts) error {
	limit, after := o.limit, o.after
	if limit < 1 || limit > 1000 || after < 0 {
		return usagef("--limit is 1-1000 and --after not negative")
	}
	out, err := adminDo[api.AuditLog](c, "GET", "/v1/admin/audit?limit="+strconv.Itoa(limit)+"&after="+strconv.Itoa(after), nil)
	if err != nil {
		return err
	}
	if out.Entries == nil {
		out.Entries = []api.AuditEntry{}
	}
	c.output(out, func(w io.Writer) {
		printRow(w, "ID", "TIME", "ACTOR", "ACTION", "DETAIL")
		for _, e := range out.Entries {
			printRow(w, e.ID, apiTime(e.Time), e.Actor, e.Action, e.Detail)
		}
	})
	return nil
}

func runAdminSetPolicy(c *ctx, o *setPolicyOpts) error {
	// Only the flags given change; the others keep the account's value.
	var u api.PolicyUpdate
	if o.requireAdminApproval.set {
		u.RequireAdminApproval = ptr(o.requireAdminApproval.v)
	}
	if o.requireAdminReview.set {
		u.RequireAdminReview = ptr(o.requireAdminReview.v)
	}
	if o.recoveryDelay.set {
		d := o.recoveryDelay.v
		if d < 0 || d%time.Second != 0 {
			return usagef("--recovery-delay must be whole seconds, not negative")
		}
		u.RecoveryDelaySeconds = ptr(int64(d / time.Second))
	}
	if o.minProtection.set {
		u.MinLevel = ptr(o.minProtection.v)
	}
	if o.requireAttestation.set {
		u.RequireVerifiedAttestation = ptr(o.requireAttestation.v)
	}
	switch {
	case o.witnessPolicy.set && o.noWitnessPolicy:
		return usagef("give --witness-policy FILE or --no-witness-policy, not both")
	case o.witnessPolicy.set:
		text, err := readWitnessPolicy(o.witnessPolicy.v)
		if err != nil {
			return err
		}
		u.WitnessPolicy = &text
	case o.noWitnessPolicy:
		u.WitnessPolicy = ptr("")
	}
	if o.witnessMaxAge.set {
		secs, err := witnessMaxAge(o.witnessMaxAge.v)
		if err != nil {
			return err
		}
		u.WitnessMaxAgeSeconds = &secs
	}
	if u.Empty() {
		return usagef("give the policy flags to change (the others keep their value), e.g. --recovery-delay 72h or --require-admin-approval=false")
	}
	a, acct, err := c.adminAccount()
	if err != nil {
		return err
	}
	var out api.PolicyChange
	if err := a.do("POST", "/v1/admin/accounts/"+acct+"/policy", u, &out); err != nil {
		return err
	}
	c.output(struct {
		AccountID string         `json:"account_id"`
		Previous  command.Policy `json:"previous"`
		Policy    command.Policy `json:"policy"`
		Head      any            `json:"head"`
	}{acct, out.Previous, out.Policy, out.Head}, func(w io.Writer) {
		fmt.Fprintf(w, "policy of %s changed (set_policy link at head %d):\n", acct, out.Head.Seq)
		fmt.Fprintln(w, "\tBEFORE\tAFTER\t")
		for _, r := range policyRows(out.Previous, out.Policy) {
			mark := ""
			if r[1] != r[2] {
				mark = "changed"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r[0], r[1], r[2], mark)
		}
	})
	return nil
}

func ptr[T any](v T) *T { return &v }

// policyRows lists each policy setting as name, before, after.
func policyRows(before, after api.Policy) [][3]string {
	level := func(s string) string {
		if s == "" {
			return "any"
		}
		return s
	}
	delay := func(s int64) string { return (time.Duration(s) * time.Second).String() }
	return [][3]string{
		{"require admin approval", strconv.FormatBool(before.RequireAdminApproval), strconv.FormatBool(after.RequireAdminApproval)},
		{"require admin review", strconv.FormatBool(before.RequireAdminReview), strconv.FormatBool(after.RequireAdminReview)},
		{"recovery delay", delay(before.RecoveryDelaySeconds), delay(after.RecoveryDelaySeconds)},
		{"min protection", level(before.MinLevel), level(after.MinLevel)},
		{"require attestation", strconv.FormatBool(before.RequireVerifiedAttestation), strconv.FormatBool(after.RequireVerifiedAttestation)},
		{"witness policy", witnessSummary(before), witnessSummary(after)},
		{"witness max age", witnessAge(before), witnessAge(after)},
	}
}

// witnessPolicyHelp is the help of --witness-policy.
const witnessPolicyHelp = `--witness-policy FILE sets the organisation's witness policy, a
c2sp.org/tlog-policy file (witness, group and quorum lines; at most 8 KiB):
every device of the account then accepts the transparency log's checkpoints
only with that quorum's cosignatures, as well as its own policy's, and
cosignatures at most --witness-max-age old when that is below its own bound.
The policy is parsed before anything is signed; one that does not parse is
refused. Command must submit its checkpoints to those witnesses (serve
--witness), or the devices stop accepting new links.`

// readWitnessPolicy reads a tlog-policy file and checks it as devices
// will (api.Policy.Validate: the chain's form and translog.ParsePolicy).
func readWitnessPolicy(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("--witness-policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, chain.MaxWitnessPolicySize+1))
	if err != nil {
		return "", fmt.Errorf("--witness-policy: %w", err)
	}
	if len(b) > chain.MaxWitnessPolicySize {
		return "", fmt.Errorf("--witness-policy %s: more than %d bytes", file, chain.MaxWitnessPolicySize)
	}
	if err := (api.Policy{WitnessPolicy: string(b)}).Validate(); err != nil {
		return "", fmt.Errorf("--witness-policy %s: %w", file, err)
	}
	return string(b), nil
}

// witnessMaxAge checks a --witness-max-age value.
func witnessMaxAge(d time.Duration) (int64, error) {
	if d < 0 || d%time.Second != 0 || d > chain.MaxWitnessMaxAge {
		return 0, usagef("--witness-max-age must be whole seconds, from 0 to %v", chain.MaxWitnessMaxAge)
	}
	return int64(d / time.Second), nil
}

// witnessSummary is the witness policy as policyRows shows it: its
// witnesses and quorum.
func witnessSummary(p api.Policy) string {
	if p.WitnessPolicy == "" {
		return "none"
	}
	pol, err := translog.ParsePolicy([]byte(p.WitnessPolicy))
	if err != nil {
		return "invalid"
	}
	return fmt.Sprintf("quorum %s of %d witnesses", pol.Quorum, len(pol.Witnesses))
}

func witnessAge(p api.Policy) string {
	if p.WitnessMaxAgeSeconds == 0 {
		return "device's"
	}
	return (time.Duration(p.WitnessMaxAgeSeconds) * time.Second).String()
}
