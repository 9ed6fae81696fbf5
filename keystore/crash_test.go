package keystore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
)

const crashEnv = "ENIGM_CRASH_CHILD_HOME"

// TestCrashChild is the child side of TestKill9: when run with crashEnv set
// it opens the store and generates, rotates and revokes keys forever,
// printing "ok <op> <id>" after each operation returned.
func TestCrashChild(t *testing.T) {
	home := os.Getenv(crashEnv)
	if home == "" {
		t.Skip("child of TestKill9 only")
	}
	s, err := Open(home, Options{Backend: softBackend, LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	if err := s.Unlock(context.Background(), testPass); err != nil {
		fmt.Println("unlock failed:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	classes := []Class{ClassIdentity, ClassKEM, ClassSession}
	for {
		keys, _ := s.List()
		var active []KeyInfo
		for _, k := range keys {
			if k.State == lifecycle.Active {
				active = append(active, k)
			}
		}
		switch op := r.IntN(4); {
		case op <= 1 || len(active) == 0:
			c := classes[r.IntN(len(classes))]
			k, err := s.Generate(c, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Persist: true, TTL: MaxSessionTTL})
			if err != nil {
				fmt.Println("generate failed:", err)
				os.Exit(3)
			}
			fmt.Println("ok generate", k.ID)
		case op == 2:
			k := active[r.IntN(len(active))]
			n, err := s.Rotate(k.ID, RotateOptions{})
			if err != nil {
				fmt.Println("rotate failed:", err)
				os.Exit(3)
			}
			fmt.Println("ok rotate", k.ID, n.ID)
		default:
			k := active[r.IntN(len(active))]
			if err := s.RevokeKey(k.ID); err != nil {
				fmt.Println("revoke failed:", err)
				os.Exit(3)
			}
			fmt.Println("ok revoke", k.ID)
		}
	}
}

// TestKill9 kills a process in the middle of generate/rotate/revoke at
// random points, again and again, and checks each time that the store
// opens, every committed key is there and usable, and no record is partial.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	f := newFixture(t)
	f.s.SetAssociation(policy.Associated, nil)
	f.s.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 60
	r := rand.New(rand.NewPCG(42, 7))
	committed := map[KeyID]string{} // id -> state the child last reported
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+f.home)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child did not start: %q", round, sc.Text())
		}
		lines := make(chan string, 1024)
		go func() {
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		time.Sleep(time.Duration(1+r.IntN(80)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		for l := range lines {
			fields := strings.Fields(l)
			if len(fields) < 3 || fields[0] != "ok" {
				t.Fatalf("round %d: child said %q", round, l)
			}
			id, err := ParseKeyID(fields[2])
			if err != nil {
				t.Fatal(err)
			}
			switch fields[1] {
			case "generate":
				committed[id] = "active"
			case "rotate":
				committed[id] = "rotated"
				nid, _ := ParseKeyID(fields[3])
				committed[nid] = "active"
			case "revoke":
				committed[id] = "revoked"
			}
		}
		checkStore(t, f, round, committed)
	}
	if len(committed) < rounds {
		t.Fatalf("only %d operations committed in %d rounds: the kills landed before any work", len(committed), rounds)
	}
	t.Logf("%d rounds, %d keys touched", rounds, len(committed))
}

func checkStore(t *testing.T, f *fixture, round int, committed map[KeyID]string) {
	t.Helper()
	s, err := Open(f.home, f.opts())
	if err != nil {
		t.Fatalf("round %d: store does not open after SIGKILL: %v", round, err)
	}
	defer s.Close()
	if err := s.Unlock(context.Background(), testPass); err != nil {
		t.Fatalf("round %d: unlock: %v", round, err)
	}
	s.SetAppAuthorized(true)
	st, _ := s.Status()
	if !st.Audit.Intact {
		t.Fatalf("round %d: audit log broken after SIGKILL: %s", round, st.Audit.Problem)
	}
	keys, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	present := map[KeyID]KeyInfo{}
	for _, k := range keys {
		if k.Problem != "" {
			t.Fatalf("round %d: partial or damaged record: %s", round, k.Problem)
		}
		present[k.ID] = k
	}
	for id, want := range committed {
		k, ok := present[id]
		if !ok {
			t.Fatalf("round %d: committed key %s is missing", round, id.Short())
		}
		if want == "revoked" && k.State != lifecycle.Revoked {
			t.Fatalf("round %d: key %s revoked by a committed call is %v", round, id.Short(), k.State)
		}
		if want == "rotated" && k.State != lifecycle.Superseded && k.State != lifecycle.Retired && k.State != lifecycle.Revoked {
			t.Fatalf("round %d: rotated key %s is %v", round, id.Short(), k.State)
		}
	}
	// Every key that holds material opens and works.
	for _, k := range keys {
		if !k.State.HoldsMaterial() {
			continue
		}
		var err error
		switch k.Class {
		case ClassIdentity:
			h, _ := s.Identity(k.ID)
			_, err = h.ProvePossession(appPurpose("crash-check"), nil)
			if k.State == lifecycle.Superseded {
				err = nil // superseded identity keys may not sign; opening is checked below
			}
		case ClassKEM:
			h, _ := s.KEM(k.ID)
			ct, _ := SealData(k.Public, nil, []byte("x"))
			_, err = h.OpenData(nil, ct)
		case ClassSession:
			h, _ := s.Session(k.ID)
			_, err = h.Seal([]byte("x"), nil)
		}
		if err != nil && !errors.Is(err, ErrDenied) {
			t.Fatalf("round %d: %v key %s does not open: %v", round, k.Class, k.ID.Short(), err)
		}
		// Force an unwrap of every material-holding record.
		s.mu.Lock()
		d, _, lerr := s.loadMetaLocked(k.ID)
		if lerr == nil {
			var m []byte
			m, lerr = s.openDecoded(d)
			clear(m)
		}
		s.mu.Unlock()
		if lerr != nil {
			t.Fatalf("round %d: key %s record does not unwrap: %v", round, k.ID.Short(), lerr)
		}
	}
}
