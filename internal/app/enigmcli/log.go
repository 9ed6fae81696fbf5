package enigmcli

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/client"
	"github.com/enigm/enigm/internal/clikit"
	"github.com/enigm/enigm/translog"
)

// `enigm log proof` and `enigm log verify-proof`: a chain link's
// c2sp.org/tlog-proof@v1, exported from Command and checked offline.
// Enigm's proofs carry the link itself (its canonical bytes) as the
// proof's extra data, so one .tlog-proof file is enough to check a link
// with the log's keys and nothing else (docs/design/translog.md).

// logKeyOpts are the keys that judge a proof: the log's two verifier
// keys and an optional witness quorum.
type logKeyOpts struct {
	logKeys     []string
	logKeysFile string
	witnessKeys []string
	quorum      int
}

func (o *logKeyOpts) flags(fs *pflag.FlagSet, logHelp string) {
	fs.StringArrayVar(&o.logKeys, "log-key", nil, logHelp)
	fs.StringVar(&o.logKeysFile, "log-keys", "", "read the log's verifier keys from `FILE`, one per line (what `enigm-command log public-key` prints)")
	fs.StringArrayVar(&o.witnessKeys, "witness-key", nil, "a witness's cosignature verifier `VKEY` (name+hash+base64, Ed25519 0x04 or ML-DSA-44 0x06); repeat for each witness")
	fs.IntVar(&o.quorum, "quorum", 0, "`K` of the --witness-key witnesses must have cosigned (default all of them)")
}

// keys returns the log's verifier keys, its origin (their key name) and
// the witness quorum (nil without --witness-key). With no log key given,
// it returns no keys and no error when optional.
func (o *logKeyOpts) keys(c *Ctx, optional bool) ([]string, string, *translog.WitnessQuorum, error) {
	keys := append([]string(nil), o.logKeys...)
	if o.logKeysFile != "" {
		b, err := c.ReadInput(o.logKeysFile, 64<<10)
		if err != nil {
			return nil, "", nil, fmt.Errorf("reading --log-keys: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				keys = append(keys, l)
			}
		}
	}
	var q *translog.WitnessQuorum
	if len(o.witnessKeys) > 0 {
		q = &translog.WitnessQuorum{Keys: o.witnessKeys, K: o.quorum}
		if q.K == 0 {
			names := map[string]bool{}
			for _, k := range o.witnessKeys {
				name, _, _ := strings.Cut(k, "+")
				names[name] = true
			}
			q.K = len(names)
		}
	} else if o.quorum != 0 {
		return nil, "", nil, Usagef("--quorum needs the witnesses' keys (--witness-key)")
	}
	if len(keys) == 0 {
		if optional {
			return nil, "", q, nil
		}
		return nil, "", nil, Usagef("give the log's verifier keys: --log-keys FILE or --log-key VKEY twice (Ed25519 and ML-DSA-44; `enigm-command log public-key` prints them)")
	}
	origin, err := logOrigin(keys)
	if err != nil {
		return nil, "", nil, err
	}
	return keys, origin, q, nil
}

// logOrigin checks that keys are one Ed25519 (0x01) and one ML-DSA-44
// (0x06) verifier key of one name, the log's origin: a proof checked
// without the post-quantum key would hold against a classical attacker
// only.
func logOrigin(keys []string) (string, error) {
	var origin string
	types := map[byte]int{}
	for _, k := range keys {
		parts := strings.SplitN(k, "+", 3)
		if len(parts) != 3 {
			return "", Usagef("log key %q is not a verifier key (name+hash+base64)", k)
		}
		if origin != "" && parts[0] != origin {
			return "", Usagef("the log keys name two logs, %q and %q: give the two keys of one log", origin, parts[0])
		}
		origin = parts[0]
		raw, err := base64Prefix(parts[2])
		if err != nil {
			return "", Usagef("log key of %q: %v", parts[0], err)
		}
		types[raw]++
	}
	if len(keys) != 2 || types[0x01] != 1 || types[0x06] != 1 {
		return "", Usagef("give both of the log's keys, its Ed25519 key (type 0x01) and its ML-DSA-44 key (type 0x06), and no other; `enigm-command log public-key` prints them")
	}
	return origin, nil
}

// base64Prefix returns the first byte (the signature type) of a vkey's
// base64 part.
func base64Prefix(s string) (byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 2 {
		return 0, errors.New("the key is not base64 of a type byte and a public key")
	}
	return b[0], nil
}

// logProofOpts are the options of `enigm log proof`.
type logProofOpts struct {
	logKeyOpts
	out  string
	wait time.Duration
}

// verifyProofOpts are the options of `enigm log verify-proof`.
type verifyProofOpts struct {
	logKeyOpts
	link    string
	account string
	seq     string
}

func init() {
	register(func(c *Ctx) *clikit.Command {
		o := &logProofOpts{}
		return &clikit.Command{
			Path:    "log proof",
			Summary: "export a link's proof of inclusion in the transparency log (.tlog-proof)",
			Usage:   "ACCOUNT SEQ [-o FILE] [--log-keys FILE | --log-key VKEY...] [--witness-key VKEY... [--quorum K]] [--server URL]",
			Help: `Fetches link SEQ of ACCOUNT (an account id, or a name the server knows), its
inclusion proof and the log's newest checkpoint with the witnesses'
cosignatures from Command, and writes them as one c2sp.org/tlog-proof@v1
file. The file carries the link itself (its canonical bytes, as the proof's
extra data), so anyone with the log's keys can check it later, offline, with
"enigm log verify-proof" or any other tlog-proof verifier.

The proof is verified before it is written, and nothing is written when it
does not verify: under the log keys you give (--log-keys FILE, as printed by
"enigm-command log public-key", or --log-key twice), or else under the keys
the server advertises (GET /v1/info), which only shows that the server
agrees with itself. With --witness-key, the checkpoint must also carry the
cosignatures of --quorum of those witnesses (default all).

A link newer than the log's newest checkpoint is in none yet; the command
waits up to --wait for the next checkpoint (and, with --witness-key, for
the witnesses' cosignatures). Without -o the proof goes to stdout. -o
never overwrites a file.

examples:
  enigm log proof $ACCOUNT 0 -o alice-0.tlog-proof --log-keys log.keys
  enigm log proof alice 4 --server https://command.example.org > alice-4.tlog-proof
  enigm log proof alice 4 --log-keys log.keys --witness-key "$W1" --witness-key "$W2" --quorum 1`,
			Args: 2,
			Flags: func(fs *pflag.FlagSet) {
				fs.StringVar(&c.server, "server", "", "Command server `URL` (default $ENIGM_SERVER)")
				fs.StringVarP(&o.out, "out", "o", "", "write the proof to `FILE` (created, never overwritten; default stdout)")
				fs.DurationVar(&o.wait, "wait", 10*time.Second, "wait up to `DURATION` for a new link to reach a checkpoint (the server signs one every serve --log-interval, 1s by default)")
				o.flags(fs, "the log's verifier `VKEY` (give its Ed25519 and its ML-DSA-44 key; default the keys the server advertises)")
			},
			Run: c.do(func(c *Ctx) error { return runLogProof(c, o) }),
		}
	}, func(c *Ctx) *clikit.Command {
		o := &verifyProofOpts{}
		return &clikit.Command{
			Path:    "log verify-proof",
			Summary: "check a .tlog-proof offline: the link is in the log, under its keys and witnesses",
			Usage:   "FILE (--log-keys FILE | --log-key VKEY --log-key VKEY) [--link FILE] [--account ID --seq N] [--witness-key VKEY... [--quorum K]]",
			Help: `Checks a c2sp.org/tlog-proof@v1 (from "enigm log proof") without any network:
the checkpoint is the log's (its origin is the key name of the log keys) and
carries valid signatures of both of the log's keys, Ed25519 and ML-DSA-44;
with --witness-key, valid cosignatures of --quorum of those witnesses
(default all; a cosignature of a named witness that does not verify refuses
the proof); and the inclusion proof leads from the link, at the proof's
index, to the checkpoint's root.

The link is the one in the proof (its extra data, which counts only once it
is proven), or the file --link names (its canonical bytes, as "GET
/v1/accounts/{id}/chain" serves them), which must then be the proof's link
if it carries one. --account and --seq say which link you expect: a proof
of any other link is refused.

A verified proof shows that the log committed to this link in a checkpoint
its keys signed (and its witnesses saw). It does not show that the link is
the account's newest.

examples:
  enigm-command log public-key > log.keys      (on the server, once)
  enigm log verify-proof alice-0.tlog-proof --log-keys log.keys
  enigm log verify-proof alice-4.tlog-proof --log-keys log.keys --account $ACCOUNT --seq 4
  enigm log verify-proof p.tlog-proof --log-keys log.keys --witness-key "$W1" --json`,
			Args: 1,
			Flags: func(fs *pflag.FlagSet) {
				o.flags(fs, "the log's verifier `VKEY` (give both: Ed25519 and ML-DSA-44)")
				fs.StringVar(&o.link, "link", "", "the link's canonical bytes are in `FILE` (default the link the proof carries)")
				fs.StringVar(&o.account, "account", "", "refuse unless the link is of account `ID` (64 hex digits)")
				fs.StringVar(&o.seq, "seq", "", "refuse unless the link has sequence number `N`")
			},
			Run: c.do(func(c *Ctx) error { return runVerifyProof(c, o) }),
		}
	})
}

// logProofJSON is the --json answer of both commands.
type logProofJSON struct {
	Verified  bool           `json:"verified"`
	File      string         `json:"file,omitempty"`
	Proof     string         `json:"proof,omitempty"`
	Bytes     int            `json:"bytes"`
	AccountID string         `json:"account_id"`
	Seq       uint64         `json:"seq"`
	LinkType  string         `json:"link_type"`
	LeafIndex uint64         `json:"leaf_index"`
	TreeSize  uint64         `json:"tree_size"`
	Origin    string         `json:"origin"`
	Cosigners []cosignerJSON `json:"cosigners"`
	// LogKeys is where the log keys came from: "given" or "server".
	LogKeys string `json:"log_keys,omitempty"`
}

type cosignerJSON struct {
	Name string `json:"name"`
	Time string `json:"time"`
}

func cosigners(v *translog.VerifiedProof) []cosignerJSON {
	out := []cosignerJSON{}
	for _, cs := range v.Cosigners {
		out = append(out, cosignerJSON{Name: cs.Name, Time: time.Unix(int64(min(cs.Time, 1<<62)), 0).UTC().Format(time.RFC3339)})
	}
	return out
}

// linkAccount is the link's account: its account field, or for a
// genesis link its own hash (the account id).
func linkAccount(l *chain.Link) chain.AccountID {
	if l.Type() == chain.TypeGenesis {
		return chain.AccountID(l.Hash())
	}
	return l.Account()
}

func runLogProof(c *Ctx, o *logProofOpts) error {
	seq, err := strconv.ParseUint(c.Args[1], 10, 64)
	if err != nil || seq > chain.MaxSeq {
		return Usagef("SEQ %q must be a link sequence number, 0 to %d", c.Args[1], uint64(chain.MaxSeq))
	}
	keys, origin, q, err := o.keys(c, true)
	if err != nil {
		return err
	}
	server := c.server
	if server == "" {
		server = c.Getenv("ENIGM_SERVER")
	}
	if server == "" {
		return Usagef("pass --server URL or set $ENIGM_SERVER")
	}
	cl, err := client.New(server, nil)
	if err != nil {
		return err
	}
	ctx := c.Context()
	acct, err := client.ParseAccountID(c.Args[0])
	if err != nil {
		if acct, err = cl.LookupName(ctx, c.Args[0]); err != nil {
			return fmt.Errorf("account %q: not an account id, and the server knows no account of that name: %w", c.Args[0], err)
		}
	}
	from := "given"
	if keys == nil {
		info, err := cl.Info(ctx)
		if err != nil {
			return err
		}
		if info.Log == nil {
			return errors.New("the server publishes no transparency log (GET /v1/info has no log): there is nothing to prove")
		}
		keys, from = info.Log.PublicKeys, "server"
		if origin, err = logOrigin(keys); err != nil {
			return fmt.Errorf("the server advertises log keys that cannot verify a proof: %w", err)
		}
	}
	v, err := cl.Chain(ctx, acct, int64(seq)-1)
	if err != nil {
		return fmt.Errorf("fetching link %d of account %s: %w", seq, acct, err)
	}
	if len(v.Links) == 0 {
		return fmt.Errorf("account %s has no link %d (its head is link %d)", acct, seq, v.Head.Seq)
	}
	raw := v.Links[0]
	l, err := chain.ParseLink(raw)
	if err != nil {
		return fmt.Errorf("the server's link %d of account %s does not parse: %w", seq, acct, err)
	}
	if linkAccount(l) != acct || l.Seq() != seq {
		return fmt.Errorf("asked the server for link %d of account %s, it sent link %d of account %s", seq, acct, l.Seq(), linkAccount(l))
	}
	// A link newer than the newest checkpoint is not in it yet (503 for
	// about one --log-interval of the server), and witnesses cosign a
	// checkpoint shortly after it is published: ask again until --wait.
	deadline := time.Now().Add(o.wait)
	again := func() bool {
		if !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
			return true
		}
	}
	var p *translog.Proof
	var ver *translog.VerifiedProof
	for {
		var ip api.InclusionProof
		err := getJSON(c, server, fmt.Sprintf("/v1/accounts/%s/links/%d/proof", acct, seq), &ip)
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable && again() {
			continue
		}
		if err != nil {
			return fmt.Errorf("fetching the inclusion proof of link %d of account %s: %w", seq, acct, err)
		}
		p = &translog.Proof{Extra: raw, Index: ip.LeafIndex, Hashes: ip.Proof, Checkpoint: []byte(ip.Checkpoint)}
		ver, err = p.Verify(raw, origin, keys, q)
		if errors.Is(err, translog.ErrQuorum) && again() {
			continue
		}
		if err != nil {
			return fmt.Errorf("the server's proof of link %d of account %s does not verify, nothing was written: %w", seq, acct, err)
		}
		break
	}
	b, err := p.Bytes()
	if err != nil {
		return err
	}
	out := logProofJSON{Verified: true, Bytes: len(b), AccountID: acct.String(), Seq: seq, LinkType: l.Type().String(),
		LeafIndex: ver.Index, TreeSize: ver.Checkpoint.Size, Origin: origin, Cosigners: cosigners(ver), LogKeys: from}
	if o.out == "" || o.out == "-" {
		if c.G.JSON {
			out.Proof = string(b)
			return c.Output(out, nil)
		}
		_, err := c.Stdout.Write(b)
		return err
	}
	f, err := os.OpenFile(o.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; nothing was written (choose another -o FILE or remove it)", o.out)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(o.out)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(o.out)
		return err
	}
	out.File = o.out
	return c.Output(out, func() {
		c.Printf("wrote %s (%d bytes): link %d (%s) of account %s is leaf %d of the checkpoint of %d leaves of %s\n",
			o.out, len(b), seq, out.LinkType, acct, ver.Index, ver.Checkpoint.Size, origin)
		printCosigners(c, out.Cosigners)
		if from == "server" {
			c.Printf("checked under the log keys the server advertises; check it with the keys you trust: enigm log verify-proof %s --log-keys FILE\n", o.out)
		}
	})
}

func printCosigners(c *Ctx, cs []cosignerJSON) {
	for _, w := range cs {
		c.Printf("cosigned by %s at %s\n", w.Name, w.Time)
	}
}

func runVerifyProof(c *Ctx, o *verifyProofOpts) error {
	keys, origin, q, err := o.keys(c, false)
	if err != nil {
		return err
	}
	var want chain.AccountID
	wantSeq := int64(-1)
	if o.seq != "" {
		n, err := strconv.ParseUint(o.seq, 10, 64)
		if err != nil || n > chain.MaxSeq {
			return Usagef("--seq %q must be a link sequence number, 0 to %d", o.seq, uint64(chain.MaxSeq))
		}
		wantSeq = int64(n)
	}
	if o.account != "" {
		if want, err = client.ParseAccountID(o.account); err != nil {
			return Usagef("--account %q: %v", o.account, err)
		}
	}
	b, err := c.ReadInput(c.Args[0], int64(translog.MaxProofSize))
	if err != nil {
		return fmt.Errorf("reading the proof: %w", err)
	}
	p, err := translog.ParseProof(b)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Args[0], err)
	}
	leaf := p.Extra
	if o.link != "" {
		if leaf, err = c.ReadInput(o.link, chain.MaxLinkSize); err != nil {
			return fmt.Errorf("reading --link: %w", err)
		}
		if p.Extra != nil && !bytes.Equal(p.Extra, leaf) {
			return fmt.Errorf("%s carries another link than %s: refused", c.Args[0], o.link)
		}
	}
	if leaf == nil {
		return Usagef("%s carries no link (no extra data): give the link's bytes with --link FILE", c.Args[0])
	}
	ver, err := p.Verify(leaf, origin, keys, q)
	if err != nil {
		return fmt.Errorf("%s does not verify: %w", c.Args[0], err)
	}
	l, err := chain.ParseLink(leaf)
	if err != nil {
		return fmt.Errorf("%s proves a leaf of %s that is not a chain link: %w", c.Args[0], origin, err)
	}
	acct := linkAccount(l)
	if o.account != "" && acct != want {
		return fmt.Errorf("%s proves link %d of account %s, not of account %s: refused", c.Args[0], l.Seq(), acct, want)
	}
	if wantSeq >= 0 && l.Seq() != uint64(wantSeq) {
		return fmt.Errorf("%s proves link %d of account %s, not link %d: refused", c.Args[0], l.Seq(), acct, wantSeq)
	}
	out := logProofJSON{Verified: true, Bytes: len(b), AccountID: acct.String(), Seq: l.Seq(), LinkType: l.Type().String(),
		LeafIndex: ver.Index, TreeSize: ver.Checkpoint.Size, Origin: origin, Cosigners: cosigners(ver)}
	return c.Output(out, func() {
		c.Printf("verified: link %d (%s) of account %s is leaf %d of the checkpoint of %d leaves of %s (root %s)\n",
			l.Seq(), out.LinkType, acct, ver.Index, ver.Checkpoint.Size, origin, hex.EncodeToString(ver.Checkpoint.Hash[:]))
		printCosigners(c, out.Cosigners)
		if q == nil {
			c.Printf("no witness quorum was required (--witness-key): a log that shows others another history would not be caught by this check\n")
		}
	})
}

// getJSON GETs path from the server (no authentication: proofs are
// public) and decodes a validated JSON answer into v.
func getJSON(c *Ctx, server, path string, v interface{ Validate() error }) error {
	u, err := client.ParseServerURL(server)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(c.Context(), http.MethodGet, strings.TrimSuffix(u.String(), "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.HTTPClient(&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", client.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		e := &client.APIError{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: http.StatusText(resp.StatusCode)}
		var w api.Error
		if json.Unmarshal(body, &w) == nil && w.Validate() == nil {
			e.Code, e.Message = w.Error.Code, w.Error.Message
		}
		return e
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the server's answer is not what the API says: %w", err)
	}
	return v.Validate()
}
