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
		got, _ := serveConfig(t, c.args...)
		if got.StateCacheBytes != c.want {
			t.Errorf("%v: state cache budget %d, want %d", c.args, got.StateCacheBytes, c.want)
		}
	}
}

// serveConfig runs serve with args on an address that cannot be bound (it
// stops after command.New) and returns the Config it built and stderr.
func serveConfig(t *testing.T, args ...string) (command.Config, string) {
	t.Helper()
	env := testEnv(nil)
	var got command.Config
	set := env.Config
	env.Config = func(cfg *command.Config) { set(cfg); got = *cfg }
	var out, errb bytes.Buffer
	env.Stdout, env.Stderr = &out, &errb
	all := append([]string{"serve", "--data", t.TempDir(), "--listen", "256.0.0.1:1"}, args...)
	if code := Main(context.Background(), env, all); code != ExitError {
		t.Fatalf("%v: exit %d: %s", args, code, errb.String())
	}
	return got, errb.String()
}
