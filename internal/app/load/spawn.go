package load

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process the tool started: an enigm-command server or the
// trivial server, listening on loopback.
type child struct {
	name string
	url  string
	cmd  *exec.Cmd
	done chan error
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the process to shut down (SIGTERM, as an operator would) and
// waits for it.
func (c *child) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		return err
	case <-time.After(45 * time.Second):
		c.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop within 45s; killed", c.name)
	}
}

// startChild starts cmd and reads the URL it listens on from the first
// line of its stdout: either a JSON object with "url" or the URL itself.
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		if b, err := r.Peek(1); err == nil && b[0] == '{' {
			var j struct {
				URL string `json:"url"`
			}
			dec := json.NewDecoder(r)
			dec.Decode(&j)
			line <- j.URL
			io.Copy(io.Discard, io.MultiReader(dec.Buffered(), r))
			return
		}
		s, _ := r.ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, r)
	}()
	go func() { c.done <- cmd.Wait() }()
	select {
	case s := <-line:
		if !strings.HasPrefix(s, "http://") {
			c.stop()
			return nil, fmt.Errorf("%s did not print its address (got %q)", name, s)
		}
		c.url = s
		return c, nil
	case err := <-c.done:
		return nil, fmt.Errorf("%s exited at start: %v", name, err)
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start within 2 minutes", name)
	}
}

// findCommand returns the enigm-command binary: the given path, the one
// next to this executable, or the one in $PATH.
func findCommand(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "enigm-command")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("enigm-command"); err == nil {
		return p, nil
	}
	return "", errors.New("no enigm-command binary next to enigm-load or in $PATH: build both (go build -o bin/ ./cmd/enigm-command ./cmd/enigm-load) or pass --command PATH")
}

// startServer starts `enigm-command serve` on a free loopback port with
// its data in dir (and its database at db when set), rate limits off.
func startServer(binary, dir, db, logLevel string, i int) (*child, error) {
	data := filepath.Join(dir, fmt.Sprintf("server%d", i))
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data", data, "--json", "--no-rate-limit",
		"--token-ttl", "2h", "--max-link-age", "1h", "--log-level", logLevel}
	if db != "" {
		args = append(args, "--db", db)
	}
	log, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("server%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(binary, args...)
	cmd.Stderr = log
	cmd.Env = append(os.Environ(), "ENIGM_COMMAND_PASSPHRASE=enigm-load")
	return startChild(fmt.Sprintf("enigm-command #%d", i), cmd)
}

// The trivial server is this executable started again with childEnv set:
// a plain net/http handler writing a file's bytes from memory, the
// comparison point of the device-list goal.
const (
	childEnv = "ENIGM_LOAD_CHILD"
	bodyEnv  = "ENIGM_LOAD_BODY"
)

// startTrivial starts the trivial server serving the bytes in file.
func startTrivial(file string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=trivial", bodyEnv+"="+file)
	cmd.Stderr = os.Stderr
	return startChild("trivial server", cmd)
}

// RunChild runs the trivial server and exits when this process was
// started as one (see startTrivial); otherwise it returns at once. Call it
// first in main (and in TestMain of tests that run the tool).
func RunChild() {
	if os.Getenv(childEnv) != "trivial" {
		return
	}
	if err := trivialServer(os.Getenv(bodyEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "enigm-load trivial server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func trivialServer(file string) error {
	body, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println("http://" + ln.Addr().String())
	srv := &http.Server{Handler: trivialHandler(body), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// trivialHandler writes body with the headers Command's device list has.
func trivialHandler(body []byte) http.Handler {
	n := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Length", n)
		w.Write(body)
	})
}
