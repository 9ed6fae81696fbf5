package chain

import (
	"fmt"
	"testing"
	"time"

	"github.com/enigm/enigm/hybrid"
	"github.com/enigm/enigm/internal/testkit"
	"github.com/enigm/enigm/internal/wire"
)

// Benchmarks: verifying links from their bytes (ParseLink + Apply, or
// ParseChain + VerifyChain), next to the raw cost of exactly the signature
// verifications that verification performs (hybrid.Verify with parsed keys
// and signatures, and the P-256 binding checks). The goal: verification
// costs at most 10% more than its signatures. Results: docs/perf.md.
//
//	go test ./chain -run '^$' -bench . -benchtime 3s

// sigJob is one signature check, with everything parsed beforehand.
type sigJob struct {
	key     *hybrid.PublicKey
	ctx     string
	msg     []byte
	sig     *hybrid.Signature
	binding func() error
}

func (j sigJob) run() error {
	if j.binding != nil {
		return j.binding()
	}
	return hybrid.Verify(j.key, j.ctx, j.msg, j.sig)
}

// sigJobs lists the signature checks Apply(s, l) performs.
func sigJobs(s *State, l *Link) []sigJob {
	var jobs []sigJob
	var subject *Device // the device whose subject/binding keys sign
	switch b := l.body.(type) {
	case *Genesis:
		subject = &b.Device
	case *AddDevice:
		subject = &b.Device
	case *ReplaceDevice:
		subject = &b.Device
	case *RecoveryRequest:
		subject = &b.Device
	case *Recover:
		subject = &s.pending.Device
	case *RotateKeys:
		d := s.devices[b.ID].Device
		if b.Identity != nil {
			d.Identity = b.Identity
		}
		subject = &d
	}
	for i := range l.sigs {
		sg := &l.sigs[i]
		j := sigJob{ctx: linkCtx[l.typ][sg.Role], msg: l.payload, sig: sg.hsig}
		switch sg.Role {
		case RoleDevice:
			j.key = s.devices[sg.Signer].Identity
		case RoleSubject:
			j.key = subject.Identity
		case RoleOrg:
			if g, ok := l.body.(*Genesis); ok {
				j.key = g.Org.AdminKey
			} else {
				j.key = s.org.AdminKey
			}
		case RoleRecovery:
			j.key = s.recovery
		case RoleNewRecovery:
			switch b := l.body.(type) {
			case *Genesis:
				j.key = b.Recovery
			case *RotateRecovery:
				j.key = b.Recovery
			}
		case RoleBinding:
			bk := subject.Binding
			if rk, ok := l.body.(*RotateKeys); ok {
				bk = s.devices[rk.ID].Binding
			}
			ctx, payload, sig := j.ctx, l.payload, sg.Sig
			j.binding = func() error { return verifyBinding(ctx, bk, payload, sig) }
		}
		if sg.Approval != nil {
			j.ctx, j.msg = approvalCtx[l.typ][sg.Role], testkit.Must(wire.Marshal(sg.Approval.wire()))
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// benchPair times verify and the bare signature checks in alternation, so
// that both see the same machine load, and reports each and the overhead.
func benchPair(b *testing.B, verify func() error, jobs []sigJob) {
	var tv, ts time.Duration
	for b.Loop() {
		t0 := time.Now()
		testkit.NoErr(b, verify())
		t1 := time.Now()
		for _, j := range jobs {
			testkit.NoErr(b, j.run())
		}
		tv, ts = tv+t1.Sub(t0), ts+time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tv.Nanoseconds())/n, "verify-ns/op")
	b.ReportMetric(float64(ts.Nanoseconds())/n, "sigs-ns/op")
	b.ReportMetric(float64(len(jobs)), "sigs")
	b.ReportMetric(100*(float64(tv)-float64(ts))/float64(ts), "overhead-%")
}

func benchAddDevice(b *testing.B, hw bool) {
	w := newWorld("bench").script("genesis A")
	nb := w.actor("B")
	if hw {
		nb = w.hw("B")
	}
	raw := w.addLink(nb, w.actor("A"), false).Bytes()
	jobs := sigJobs(w.st, testkit.Must(ParseLink(raw)))
	benchPair(b, func() error {
		l, err := ParseLink(raw)
		if err != nil {
			return err
		}
		_, err = Apply(w.st, l, w.now)
		return err
	}, jobs)
}

// BenchmarkAddDevice verifies one add_device link from its bytes
// (ParseLink + Apply): a software device (two hybrid signatures) and a
// hardware device (two hybrid signatures and a P-256 binding signature).
func BenchmarkAddDevice(b *testing.B) {
	b.Run("software", func(b *testing.B) { benchAddDevice(b, false) })
	b.Run("hardware", func(b *testing.B) { benchAddDevice(b, true) })
}

// BenchmarkParseLink and BenchmarkApplyParsed split BenchmarkAddDevice
// (software) into decoding and rule checking plus signatures.
func BenchmarkParseLink(b *testing.B) {
	w := newWorld("bench").script("genesis A")
	raw := w.addLink(w.actor("B"), w.actor("A"), false).Bytes()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := ParseLink(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyParsed(b *testing.B) {
	w := newWorld("bench").script("genesis A")
	l := w.addLink(w.actor("B"), w.actor("A"), false)
	for b.Loop() {
		if _, err := Apply(w.st, l, w.now); err != nil {
			b.Fatal(err)
		}
	}
}

// chain1000 builds a 1,000-link chain of everyday churn. In every ten
// links: four devices are added (approved by the newest device), four are
// revoked (oldest first, by the newest device), one rotates its identity
// and KEM keys, one is replaced. D0, the genesis device, stays.
func chain1000(b *testing.B) *world {
	w := newWorld("bench1000").script("genesis D0")
	prev := "D0"
	var live []string
	n := 0
	add := func(stmt string) string {
		n++
		name := fmt.Sprintf("D%d", n)
		w.script(fmt.Sprintf(stmt, name))
		return name
	}
	for len(w.links) < 1000 {
		i := len(w.links)
		switch {
		case len(live) == 0 || i%5 == 1 || i%5 == 3:
			prev = add("add %s by " + prev)
			live = append(live, prev)
		case i%10 == 2:
			w.script("rotate " + prev)
		case i%10 == 4:
			old := live[0]
			prev = add("replace " + old + " with %s")
			live = append(live[1:], prev)
		default:
			w.script(fmt.Sprintf("revoke %s by %s", live[0], prev))
			if live[0] == prev {
				prev = "D0"
			}
			live = live[1:]
		}
	}
	return w
}

// BenchmarkChain1000 verifies a 1,000-link chain from its bytes
// (ParseChain + VerifyChain).
func BenchmarkChain1000(b *testing.B) {
	w := chain1000(b)
	raw := make([][]byte, len(w.links))
	for i, l := range w.links {
		raw[i] = l.Bytes()
	}
	var jobs []sigJob
	var s *State
	for _, l := range w.links {
		base := s
		if base == nil {
			base = &State{}
		}
		jobs = append(jobs, sigJobs(base, l)...)
		s = testkit.Must(Apply(s, l, w.now))
	}
	benchPair(b, func() error {
		ls, err := ParseChain(raw)
		if err != nil {
			return err
		}
		_, err = VerifyChain(nil, ls, w.now)
		return err
	}, jobs)
}

// TestSigJobsMatchVerification makes sure the benchmark's baseline checks
// exactly the signatures verification checks: each job verifies, and the
// count per link equals the link's signatures.
func TestSigJobsMatchVerification(t *testing.T) {
	w := newWorld("jobs").script("genesis A hw managed admin-approval admin-review delay=0s; add B by A org hw; rotate B; replace A with C org; request R; recover R org; rotate-recovery by B; revoke C by org")
	var s *State
	for _, l := range w.links {
		base := s
		if base == nil {
			base = &State{}
		}
		jobs := sigJobs(base, l)
		if len(jobs) != len(l.sigs) {
			t.Fatalf("%s: %d jobs for %d signatures", l.typ, len(jobs), len(l.sigs))
		}
		for _, j := range jobs {
			if err := j.run(); err != nil {
				t.Fatalf("%s: baseline job fails: %v", l.typ, err)
			}
		}
		s = testkit.Must(Apply(s, l, w.now))
	}
}
