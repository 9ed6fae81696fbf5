package commandcli

import (
	"bytes"
	"context"
	"testing"

	"github.com/enigm/enigm/command"
)

// --state-cache-mib reaches the server's Config, in MiB; the default is
// command.DefaultStateCacheBytes (out-of-range values: usage.txtar).
func TestServeStateCacheFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want int64
	}{
		{nil, command.DefaultStateCacheBytes},
		{[]string{"--state-cache-mib", "64"}, 64 << 20},
		{[]string{"--state-cache-mib", "1"}, command.MinStateCacheBytes},
	} {
		env := testEnv(nil)
		var got command.Config
		set := env.Config
		env.Config = func(cfg *command.Config) { set(cfg); got = *cfg }
		var out, errb bytes.Buffer
		env.Stdout, env.Stderr = &out, &errb
		// An address that cannot be bound: serve stops after New.
		args := append([]string{"serve", "--data", t.TempDir(), "--listen", "256.0.0.1:1"}, c.args...)
		if code := Main(context.Background(), env, args); code != ExitError {
			t.Fatalf("%v: exit %d: %s", c.args, code, errb.String())
		}
		if got.StateCacheBytes != c.want {
			t.Errorf("%v: state cache budget %d, want %d", c.args, got.StateCacheBytes, c.want)
		}
	}
}
