package commandcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/client"
)

// DefaultServer is where the admin client goes without --server or
// $ENIGM_SERVER.
const DefaultServer = "http://127.0.0.1:8470"

const adminHelpCommon = `The admin credential comes from $ENIGM_ADMIN_TOKEN or --token-file (never a
flag value). --server defaults to $ENIGM_SERVER, then ` + DefaultServer + `.
The admin changes lifecycle state; it never sees or handles a device key.`

func adminFlags(extra func(fs *flag.FlagSet)) func(fs *flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		fs.String("server", "", "Command `URL` (default $ENIGM_SERVER, then "+DefaultServer+")")
		fs.String("token-file", "", "read the admin token from `FILE` (default $ENIGM_ADMIN_TOKEN)")
		if extra != nil {
			extra(fs)
		}
	}
}

func init() {
	register(
		&cmd{path: "admin accounts", usage: "[--json]", summary: "list the organisation's accounts", args: 0,
			help:  adminHelpCommon + "\n\nexample:\n  ENIGM_ADMIN_TOKEN=eat_… enigm-command admin accounts",
			flags: adminFlags(nil), run: runAdminAccounts},
		&cmd{path: "admin enrollments", usage: "[--json]", summary: "list enrollment requests awaiting the organisation", args: 0,
			help:  adminHelpCommon + "\n\nexample:\n  enigm-command admin enrollments --token-file admin.token --json",
			flags: adminFlags(nil), run: runAdminEnrollments},
		&cmd{path: "admin approve", usage: "REQUEST_ID [--json]", summary: "approve an enrollment request for the organisation", args: 1,
			help: "Command signs the organisation's approval of the request, against the same\nchain head the approving device signed. The new device then completes it.\n\n" +
				adminHelpCommon + "\n\nexample:\n  enigm-command admin approve 6f1e0c2a9b8d7e6f5a4b3c2d1e0f9a8b",
			flags: adminFlags(nil), run: runAdminApprove},
		&cmd{path: "admin deny", usage: "REQUEST_ID [--reason R] [--json]", summary: "deny an enrollment request", args: 1,
			help:  adminHelpCommon + "\n\nexample:\n  enigm-command admin deny 6f1e0c2a9b8d7e6f5a4b3c2d1e0f9a8b --reason \"unknown laptop\"",
			flags: adminFlags(func(fs *flag.FlagSet) { fs.String("reason", "", "why (recorded in the audit log)") }), run: runAdminDeny},
		&cmd{path: "admin revoke", usage: "ACCOUNT_ID DEVICE_ID [--reason R] [--yes] [--json]", summary: "revoke a device of an organisation account", args: 2,
			help: "Command builds a revoke_device link, signs it with the organisation key and\nappends it. The device is cut off at once: its requests fail with\ndevice_revoked, its queued envelopes are deleted, and nothing is sent to it.\nAsks for confirmation unless --yes.\n\n" +
				adminHelpCommon + "\n\nexample:\n  enigm-command admin revoke 9c4e…21 5b0a…7f --reason lost --yes",
			flags: adminFlags(func(fs *flag.FlagSet) {
				fs.String("reason", "", "why (recorded in the audit log)")
				fs.Bool("yes", false, "do not ask for confirmation")
			}), run: runAdminRevoke},
		&cmd{path: "admin set-policy", usage: "ACCOUNT_ID [--require-admin-approval[=false]] [--require-admin-review[=false]] [--recovery-delay D] [--min-protection LEVEL] [--require-attestation[=false]] [--json]",
			summary: "change a managed account's policy (a set_policy link signed by the organisation)", args: 1,
			help: "Changes only the settings whose flags are given; the others keep their current\nvalue (turn a setting off with --flag=false). Prints the policy before and\nafter. Command signs a set_policy link with the organisation key; every\ndevice verifies it.\n\n" +
				adminHelpCommon + "\n\nexamples:\n  enigm-command admin set-policy 9c4e…21 --recovery-delay 72h\n  enigm-command admin set-policy 9c4e…21 --require-admin-approval=false --min-protection hardware-tpm",
			flags: adminFlags(func(fs *flag.FlagSet) {
				fs.Bool("require-admin-approval", false, "new devices need the organisation's approval")
				fs.Bool("require-admin-review", false, "recoveries need the organisation's review")
				fs.Duration("recovery-delay", 0, "recovery waiting period")
				fs.String("min-protection", "", "lowest device protection `LEVEL`")
				fs.Bool("require-attestation", false, "devices must carry verified attestation evidence")
			}), run: runAdminSetPolicy},
		&cmd{path: "admin recoveries", usage: "[--json]", summary: "list the organisation's recoveries", args: 0,
			help:  adminHelpCommon + "\n\nexample:\n  enigm-command admin recoveries --json",
			flags: adminFlags(nil), run: runAdminRecoveries},
		&cmd{path: "admin review", usage: "RECOVERY_ID --approve|--deny [--reason R] [--json]", summary: "approve or deny a recovery awaiting review", args: 1,
			help: "Approving counter-signs the recovering device's recover link and appends it;\ndenying closes the recovery.\n\n" +
				adminHelpCommon + "\n\nexamples:\n  enigm-command admin review 8e2f…c1 --approve\n  enigm-command admin review 8e2f…c1 --deny --reason \"not requested by the user\"",
			flags: adminFlags(func(fs *flag.FlagSet) {
				fs.Bool("approve", false, "approve the recovery")
				fs.Bool("deny", false, "deny the recovery")
				fs.String("reason", "", "why (recorded in the audit log)")
			}), run: runAdminReview},
		&cmd{path: "admin devices", usage: "ACCOUNT_ID [--json]", summary: "list an account's devices", args: 1,
			help:  adminHelpCommon + "\n\nexample:\n  enigm-command admin devices 9c4e…21 --json",
			flags: adminFlags(nil), run: runAdminDevices},
		&cmd{path: "admin audit", usage: "[--limit N] [--after ID] [--json]", summary: "show the organisation's audit log", args: 0,
			help: adminHelpCommon + "\n\nexample:\n  enigm-command admin audit --limit 20",
			flags: adminFlags(func(fs *flag.FlagSet) {
				fs.Int("limit", 100, "at most N entries (1-1000)")
				fs.Int("after", 0, "entries after this id")
			}), run: runAdminAudit},
	)
}

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
	server := c.str("server")
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
	if f := c.str("token-file"); f != "" {
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

func isHex(s string, n int) bool { return api.IsHex(s, n) }

// output prints v as versioned JSON, or calls text.
func (c *ctx) output(v map[string]any, text func(w io.Writer)) {
	if c.json {
		v["version"] = 1
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
	a, err := c.admin()
	if err != nil {
		return err
	}
	var out api.AccountList
	if err := a.do("GET", "/v1/admin/accounts", nil, &out); err != nil {
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
	c.output(map[string]any{"accounts": rows}, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tACCOUNT ID\tHEAD")
		for _, r := range rows {
			fmt.Fprintf(w, "%s\t%s\t%d\n", r.Name, r.AccountID, r.HeadSeq)
		}
	})
	return nil
}

func runAdminEnrollments(c *ctx) error {
	a, err := c.admin()
	if err != nil {
		return err
	}
	var list api.EnrollmentList
	if err := a.do("GET", "/v1/admin/enrollments", nil, &list); err != nil {
		return err
	}
	out := struct{ Enrollments []enrollment }{Enrollments: []enrollment{}}
	for _, e := range list.Enrollments {
		out.Enrollments = append(out.Enrollments, enrollmentOut(e))
	}
	c.output(map[string]any{"enrollments": out.Enrollments}, func(w io.Writer) {
		if len(out.Enrollments) == 0 {
			fmt.Fprintln(w, "no enrollment requests await the organisation")
			return
		}
		fmt.Fprintln(w, "REQUEST ID\tTYPE\tACCOUNT\tDEVICE\tNAME\tPROTECTION\tEXPIRES")
		for _, e := range out.Enrollments {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.RequestID, e.Type, e.AccountID, e.DeviceID, e.DeviceName, e.Protection, e.ExpiresAt)
		}
	})
	return nil
}

func runAdminApprove(c *ctx) error {
	return adminEnrollmentAction(c, "approve", nil)
}

func runAdminDeny(c *ctx) error {
	return adminEnrollmentAction(c, "deny", &api.Reason{Reason: c.str("reason")})
}

func adminEnrollmentAction(c *ctx, action string, body any) error {
	rid := c.args[0]
	if !isHex(rid, 16) {
		return usagef("REQUEST_ID is 32 lowercase hex digits")
	}
	a, err := c.admin()
	if err != nil {
		return err
	}
	var e api.Enrollment
	if err := a.do("POST", "/v1/admin/enrollments/"+rid+"/"+action, body, &e); err != nil {
		return err
	}
	c.output(map[string]any{"request_id": e.RequestID, "state": e.State, "account_id": e.AccountID, "device_id": e.DeviceID}, func(w io.Writer) {
		fmt.Fprintf(w, "enrollment %s of device %s (%s) is now %s\n", e.RequestID, e.DeviceID, e.DeviceName, e.State)
	})
	return nil
}

func runAdminRevoke(c *ctx) error {
	acct, dev := c.args[0], c.args[1]
	if !isHex(acct, 32) || !isHex(dev, 16) {
		return usagef("ACCOUNT_ID is 64 and DEVICE_ID 32 lowercase hex digits")
	}
	a, err := c.admin()
	if err != nil {
		return err
	}
	if !c.boolean("yes") {
		ok, err := c.confirm(fmt.Sprintf("Revoke device %s of account %s for good?", dev, acct))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not revoked")
		}
	}
	var out api.HeadResponse
	if err := a.do("POST", "/v1/admin/accounts/"+acct+"/revoke", &api.RevokeRequest{DeviceID: dev, Reason: c.str("reason")}, &out); err != nil {
		return err
	}
	c.output(map[string]any{"account_id": acct, "device_id": dev, "revoked": true, "head": out.Head}, func(w io.Writer) {
		fmt.Fprintf(w, "device %s revoked (account %s, head %d)\n", dev, acct, out.Head.Seq)
	})
	return nil
}

func runAdminRecoveries(c *ctx) error {
	a, err := c.admin()
	if err != nil {
		return err
	}
	var list api.RecoveryList
	if err := a.do("GET", "/v1/admin/recoveries", nil, &list); err != nil {
		return err
	}
	out := struct{ Recoveries []recovery }{Recoveries: []recovery{}}
	for _, r := range list.Recoveries {
		out.Recoveries = append(out.Recoveries, recoveryOut(r))
	}
	c.output(map[string]any{"recoveries": out.Recoveries}, func(w io.Writer) {
		if len(out.Recoveries) == 0 {
			fmt.Fprintln(w, "no recoveries")
			return
		}
		fmt.Fprintln(w, "RECOVERY ID\tSTATE\tACCOUNT\tDEVICE\tNOT BEFORE")
		for _, r := range out.Recoveries {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.RecoveryID, r.State, r.AccountID, r.DeviceID, r.NotBefore)
		}
	})
	return nil
}

func runAdminReview(c *ctx) error {
	rid := c.args[0]
	if !isHex(rid, 32) {
		return usagef("RECOVERY_ID is 64 lowercase hex digits")
	}
	approve, deny := c.boolean("approve"), c.boolean("deny")
	if approve == deny {
		return usagef("pass exactly one of --approve and --deny")
	}
	a, err := c.admin()
	if err != nil {
		return err
	}
	var r api.Recovery
	if err := a.do("POST", "/v1/admin/recoveries/"+rid+"/review", &api.ReviewRequest{Approve: &approve, Reason: c.str("reason")}, &r); err != nil {
		return err
	}
	c.output(map[string]any{"recovery_id": r.RecoveryID, "state": r.State, "account_id": r.AccountID, "device_id": r.DeviceID}, func(w io.Writer) {
		fmt.Fprintf(w, "recovery %s of device %s is now %s\n", r.RecoveryID, r.DeviceID, r.State)
	})
	return nil
}

func runAdminDevices(c *ctx) error {
	acct := c.args[0]
	if !isHex(acct, 32) {
		return usagef("ACCOUNT_ID is 64 lowercase hex digits")
	}
	a, err := c.admin()
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
	c.output(map[string]any{"account_id": acct, "head": out.Head, "devices": out.Devices}, func(w io.Writer) {
		fmt.Fprintln(w, "DEVICE ID\tNAME\tSTATE\tPROTECTION\tAPPROVED BY\tADDED")
		for _, d := range out.Devices {
			fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\t%v\n", d.DeviceID, d.Name, d.State, d.Protection, d.ApprovedBy, apiTime(d.AddedAt))
		}
	})
	return nil
}

func runAdminAudit(c *ctx) error {
	limit, after := c.integer("limit"), c.integer("after")
	if limit < 1 || limit > 1000 || after < 0 {
		return usagef("--limit is 1-1000 and --after not negative")
	}
	a, err := c.admin()
	if err != nil {
		return err
	}
	var out api.AuditLog
	if err := a.do("GET", "/v1/admin/audit?limit="+strconv.Itoa(limit)+"&after="+strconv.Itoa(after), nil, &out); err != nil {
		return err
	}
	if out.Entries == nil {
		out.Entries = []api.AuditEntry{}
	}
	c.output(map[string]any{"entries": out.Entries}, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tTIME\tACTOR\tACTION\tDETAIL")
		for _, e := range out.Entries {
			fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\n", e.ID, apiTime(e.Time), e.Actor, e.Action, e.Detail)
		}
	})
	return nil
}

func runAdminSetPolicy(c *ctx) error {
	acct := c.args[0]
	if !isHex(acct, 32) {
		return usagef("ACCOUNT_ID is 64 lowercase hex digits")
	}
	// Only the flags given change; the others keep the account's value.
	var u api.PolicyUpdate
	if c.flagSet("require-admin-approval") {
		u.RequireAdminApproval = ptr(c.boolean("require-admin-approval"))
	}
	if c.flagSet("require-admin-review") {
		u.RequireAdminReview = ptr(c.boolean("require-admin-review"))
	}
	if c.flagSet("recovery-delay") {
		d := c.duration("recovery-delay")
		if d < 0 || d%time.Second != 0 {
			return usagef("--recovery-delay must be whole seconds, not negative")
		}
		u.RecoveryDelaySeconds = ptr(int64(d / time.Second))
	}
	if c.flagSet("min-protection") {
		u.MinLevel = ptr(c.str("min-protection"))
	}
	if c.flagSet("require-attestation") {
		u.RequireVerifiedAttestation = ptr(c.boolean("require-attestation"))
	}
	if u.Empty() {
		return usagef("give the policy flags to change (the others keep their value), e.g. --recovery-delay 72h or --require-admin-approval=false")
	}
	a, err := c.admin()
	if err != nil {
		return err
	}
	var out api.PolicyChange
	if err := a.do("POST", "/v1/admin/accounts/"+acct+"/policy", u, &out); err != nil {
		return err
	}
	c.output(map[string]any{"account_id": acct, "previous": out.Previous, "policy": out.Policy, "head": out.Head}, func(w io.Writer) {
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
	}
}
