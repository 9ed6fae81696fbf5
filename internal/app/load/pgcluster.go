package load

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// pgCluster is a throwaway PostgreSQL cluster for a run (--pg-cluster),
// started like scripts/test.sh starts the tests' one, but with the
// server's default durability (fsync and synchronous commit on): initdb
// in the run's directory, a free loopback port, one database.
type pgCluster struct {
	bin  string   // directory of initdb, pg_ctl, postgres
	data string   // data directory
	as   []string // runuser -u postgres -- when running as root
	URL  string
}

// findPGBin returns the directory of the newest PostgreSQL server
// binaries: /usr/lib/postgresql/*/bin, else initdb in $PATH.
func findPGBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) < pgVersion(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("--pg-cluster needs the PostgreSQL server binaries (initdb, pg_ctl): install postgresql, or pass --db")
}

func pgVersion(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// startPGCluster creates and starts a cluster under dir.
func startPGCluster(dir string) (*pgCluster, error) {
	bin, err := findPGBin()
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bin: bin, data: filepath.Join(dir, "pg")}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, --pg-cluster needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{dir, c.data} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if out, err := c.run("initdb", "-D", c.data, "-A", "trust", "-U", "postgres", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=200", port, c.data)
	if out, err := c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(c.data, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	if out, err := c.run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "enigm_load"); err != nil {
		c.stop()
		return nil, fmt.Errorf("createdb: %v\n%s", err, out)
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/enigm_load?sslmode=disable", port)
	return c, nil
}

func (c *pgCluster) run(tool string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, c.as...), filepath.Join(c.bin, tool)), args...)
	return exec.Command(argv[0], argv[1:]...).CombinedOutput()
}

// version returns the server's version line, e.g. "PostgreSQL 15.14".
func (c *pgCluster) version() string {
	out, err := exec.Command(filepath.Join(c.bin, "postgres"), "--version").Output()
	if err != nil {
		return "PostgreSQL"
	}
	// "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "PostgreSQL"
	}
	return "PostgreSQL " + f[2]
}

func (c *pgCluster) stop() {
	c.run("pg_ctl", "-D", c.data, "-m", "fast", "-w", "stop")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
