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

	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/lifecycle"
	"github.com/enigm/enigm/policy"
	"github.com/enigm/enigm/posture"
)

const crashEnv = "ENIGM_CRASH_CHILD_HOME"

// childOpen opens and unlocks the keystore at home in a child process
// (posture p, or none); a failure ends the child with exit status 2.
func childOpen(home string, p posture.Provider) *Store {
	s, err := Open(home, Options{Backend: testkit.SoftBackend, Posture: p, LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(2)
	}
	if err := s.Unlock(context.Background(), testPass); err != nil {
		fmt.Println("unlock failed:", err)
		os.Exit(2)
	}
	return s
}

// TestCrashChild is the child side of TestKill9: when run with crashEnv set
// it opens the store and generates, rotates and revokes keys forever,
// printing "ok <op> <id>" after each operation returned.
func TestCrashChild(t *testing.T) {
	home := os.Getenv(crashEnv)
	if home == "" {
		t.Skip("child of TestKill9 only")
	}
	s := childOpen(home, nil)
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
	const rounds = 60
	r := rand.New(rand.NewPCG(42, 7))
	committed := map[KeyID]string{} // id -> state the child last reported
	rotations, ops := 0, 0
	for round := 0; round < rounds; round++ {
		cmd, sc := startChild(t, round, "TestCrashChild", crashEnv+"="+f.home)
		// The kill lands 1–80 ms after the child's first operation
		// returned, so that every round kills work in progress however
		// slowly the child runs (race detector, a loaded machine).
		if !sc.Scan() {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: child stopped before its first operation", round)
		}
		lines := make(chan string, 1024)
		lines <- sc.Text()
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
			ops++
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
				rotations++
			case "revoke":
				committed[id] = "revoked"
			}
		}
		checkStore(t, f, round, committed)
	}
	if rotations == 0 {
		t.Fatal("no rotation committed: the rotation links were never checked")
	}
	t.Logf("%d rounds, %d operations, %d keys touched, %d rotations", rounds, ops, len(committed), rotations)
}

// checkRotationLinks checks every rotated pair in the store: a rotation is
// one transaction, so the successor and the predecessor both exist, each
// names the other, they are of one class, and at most one of them (never
// the predecessor) is active. A rotation split in two transactions and
// killed between them leaves a half-linked pair or two active keys.
func checkRotationLinks(t *testing.T, round int, present map[KeyID]KeyInfo) {
	t.Helper()
	for _, k := range present {
		if k.Successor != nil {
			n, ok := present[*k.Successor]
			switch {
			case !ok:
				t.Fatalf("round %d: key %s names successor %s, which is not in the store", round, k.ID.Short(), k.Successor.Short())
			case n.Predecessor == nil || *n.Predecessor != k.ID:
				t.Fatalf("round %d: key %s names successor %s, whose predecessor is %v", round, k.ID.Short(), n.ID.Short(), n.Predecessor)
			case n.Class != k.Class:
				t.Fatalf("round %d: rotated pair %s (%v) → %s (%v) mixes classes", round, k.ID.Short(), k.Class, n.ID.Short(), n.Class)
			case k.State == lifecycle.Active:
				t.Fatalf("round %d: key %s is still active with successor %s (%v): two active keys of a rotated pair", round, k.ID.Short(), n.ID.Short(), n.State)
			}
		}
		if k.Predecessor != nil {
			p, ok := present[*k.Predecessor]
			switch {
			case !ok:
				t.Fatalf("round %d: key %s names predecessor %s, which is not in the store", round, k.ID.Short(), k.Predecessor.Short())
			case p.Successor == nil || *p.Successor != k.ID:
				t.Fatalf("round %d: key %s names predecessor %s (%v), whose successor is %v: the rotation is half-written", round, k.ID.Short(), p.ID.Short(), p.State, p.Successor)
			}
		}
	}
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
	checkRotationLinks(t, round, present)
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

const signChildEnv = "ENIGM_SIGN_CHILD_HOME"

// TestSignChild is the child side of TestKill9AfterSign: it signs with the
// key named in ENIGM_SIGN_CHILD_KEY forever, printing "signed <seq>" (the
// decision entry's sequence number) after each Sign returned.
func TestSignChild(t *testing.T) {
	home := os.Getenv(signChildEnv)
	if home == "" {
		t.Skip("child of TestKill9AfterSign only")
	}
	id, err := ParseKeyID(os.Getenv("ENIGM_SIGN_CHILD_KEY"))
	if err != nil {
		fmt.Println("bad key:", err)
		os.Exit(2)
	}
	s := childOpen(home, posture.Static{Level: policy.PostureDegraded})
	s.SetAppAuthorized(true)
	k, err := s.Identity(id)
	if err != nil {
		fmt.Println("no key:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	for {
		if _, err := k.Sign(appPurpose("kill9"), []byte("m")); err != nil {
			fmt.Println("sign failed:", err)
			os.Exit(3)
		}
		fmt.Println("signed", s.log.Head().Seq)
	}
}

// TestKill9AfterSign kills a process right after Sign returned: the
// decision entry of every signature the process reported is in the log
// when the store is opened again, allowed and for that key.
func TestKill9AfterSign(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	f := newFixture(t)
	id := f.genWith(ClassIdentity, GenerateOptions{Cause: lifecycle.AccountSetup, Activate: true, Algorithm: AlgEd25519})
	f.s.Close()
	r := rand.New(rand.NewPCG(7, 42))
	for round := 0; round < 10; round++ {
		cmd, sc := startChild(t, round, "TestSignChild", signChildEnv+"="+f.home, "ENIGM_SIGN_CHILD_KEY="+id.ID.String())
		var seqs []uint64
		for want := 1 + r.IntN(20); len(seqs) < want && sc.Scan(); {
			var seq uint64
			if _, err := fmt.Sscanf(sc.Text(), "signed %d", &seq); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: child said %q", round, sc.Text())
			}
			seqs = append(seqs, seq)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if len(seqs) == 0 {
			t.Fatalf("round %d: child reported no signature", round)
		}
		s, err := Open(f.home, f.opts())
		if err != nil {
			t.Fatalf("round %d: open after SIGKILL: %v", round, err)
		}
		entries, intact, err := s.AuditLog()
		s.Close()
		if err != nil || !intact {
			t.Fatalf("round %d: audit log after SIGKILL: intact=%v, %v", round, intact, err)
		}
		bySeq := map[uint64]AuditEntry{}
		for _, e := range entries {
			bySeq[e.Seq] = e
		}
		for _, seq := range seqs {
			e, ok := bySeq[seq]
			if !ok || e.Kind != "decision" || e.Key != id.ID.String() || e.Op != lifecycle.Sign.String() || len(e.Reasons) != 0 {
				t.Fatalf("round %d: signature reported with entry %d, the log has %+v (present %v)", round, seq, e, ok)
			}
		}
	}
}

// startChild runs this test binary's test named test as a child process
// with env added, and waits for its "ready" line; sc reads its further
// output. round names the attempt in a failure.
func startChild(t *testing.T, round int, test string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	testkit.NoErr(t, cmd.Start())
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("round %d: child did not start: %q", round, sc.Text())
	}
	return cmd, sc
}
