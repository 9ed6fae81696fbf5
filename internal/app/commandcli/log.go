package commandcli

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/enigm/enigm/command"
	"github.com/enigm/enigm/internal/clikit"
)

type logKeyOpts struct{ origin string }

func init() {
	register(func(c *ctx) *clikit.Command {
		o := &logKeyOpts{}
		return &clikit.Command{
			Path: "log public-key", Usage: "[--log-origin ORIGIN] [--data DIR] [--json]",
			Summary: "print the transparency log's note verifier keys",
			Help: `Prints the note verifier keys (name+hash+base64, c2sp.org/signed-note) of the
transparency log that serve publishes under /log/: the Ed25519 key first (the
one witnesses and tlog tools such as Tessera's fsck take), then the ML-DSA-44
key. Both are named by the log's origin, so give the --log-origin that serve
runs with, if any. The keys live in Command's keystore in the data directory;
when it holds none yet they are generated, as serve would at its first start,
so that witnesses can be configured before the log goes live. GET /v1/info on
a running server advertises the same keys.

examples:
  enigm-command log public-key
  enigm-command log public-key --log-origin enigm.example.org/log --json`,
			Args: 0,
			Flags: func(fs *pflag.FlagSet) {
				fs.StringVar(&o.origin, "log-origin", "", "the log's `ORIGIN`, as given to serve (default enigm-command/<Ed25519 log key fingerprint>)")
			},
			Run: c.do(func(c *ctx) error { return runLogPublicKey(c, o) }),
		}
	})
}

// logKeysJSON is `log public-key --json`.
type logKeysJSON struct {
	Origin     string   `json:"origin"`
	PublicKeys []string `json:"public_keys"`
}

func runLogPublicKey(c *ctx, o *logKeyOpts) error {
	cfg := c.dataConfig()
	cfg.LogOrigin = o.origin
	s, err := command.LogSigner(c, cfg)
	if err != nil {
		return err
	}
	if c.json {
		writeJSON(c.Stdout, logKeysJSON{Origin: s.Origin(), PublicKeys: s.VerifierKeys()})
		return nil
	}
	for _, k := range s.VerifierKeys() {
		fmt.Fprintln(c.Stdout, k)
	}
	return nil
}
