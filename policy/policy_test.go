package policy

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// good is a device state that meets every default.
func good() DeviceState {
	return DeviceState{
		LastAuth: now.Add(-time.Minute), AuthMethod: "passphrase",
		Unlocked: true, AppAuthorized: true, Association: Associated,
		Posture:     Posture{Level: PostureDegraded},
		OSTrust:     OSTrust{Deployed: true, Trusted: true},
		Attestation: Attestation{Applicable: true, Verified: true, At: now.Add(-time.Hour)},
	}
}

func TestDecideTable(t *testing.T) {
	identity, _ := Default(ClassIdentity)
	kem, _ := Default(ClassKEM)
	strict := identity.Tighten(Requirements{Associated: true, OSTrust: true, Attestation: true, AttestationMaxAge: 2 * time.Hour, AuthMethods: []string{"biometric"}, MinPosture: PostureTrusted})
	cases := []struct {
		desc   string
		req    Requirements
		mutate func(*DeviceState)
		want   []string
	}{
		{"identity allowed", identity, func(*DeviceState) {}, nil},
		{"locked", identity, func(s *DeviceState) { s.Unlocked = false }, []string{"locked"}},
		{"auth stale", identity, func(s *DeviceState) { s.LastAuth = now.Add(-6 * time.Minute) }, []string{"auth_stale"}},
		{"never authenticated", identity, func(s *DeviceState) { s.LastAuth = time.Time{} }, []string{"auth_stale"}},
		{"auth in the future", identity, func(s *DeviceState) { s.LastAuth = now.Add(time.Hour) }, []string{"auth_stale"}},
		{"app not authorized", identity, func(s *DeviceState) { s.AppAuthorized = false }, []string{"app_not_authorized"}},
		{"posture compromised", identity, func(s *DeviceState) { s.Posture.Level = PostureCompromised }, []string{"posture_insufficient"}},
		{"posture unknown", identity, func(s *DeviceState) { s.Posture.Level = PostureUnknown }, []string{"posture_insufficient"}},
		{"posture invalid", identity, func(s *DeviceState) { s.Posture.Level = 99 }, []string{"posture_insufficient"}},
		{"revoked beats everything", Requirements{}, func(s *DeviceState) { s.Revoked = true }, []string{"revoked"}},
		{"kem not associated", kem, func(s *DeviceState) { s.Association = AssociationPending }, []string{"not_associated"}},
		{"kem ignores auth", kem, func(s *DeviceState) { s.LastAuth = time.Time{}; s.AppAuthorized = false }, nil},
		{"all failing", identity, func(s *DeviceState) {
			*s = DeviceState{Revoked: true}
		}, []string{"locked", "auth_stale", "app_not_authorized", "revoked", "posture_insufficient"}},
		{"strict: method", strict, func(s *DeviceState) { s.Posture.Level = PostureTrusted }, []string{"auth_method"}},
		{"strict: os trust absent", strict, func(s *DeviceState) {
			s.Posture.Level = PostureTrusted
			s.AuthMethod = "biometric"
			s.OSTrust = OSTrust{}
		}, []string{"os_trust_required"}},
		{"strict: os trust untrusted", strict, func(s *DeviceState) {
			s.Posture.Level = PostureTrusted
			s.AuthMethod = "biometric"
			s.OSTrust.Trusted = false
		}, []string{"os_trust_required"}},
		{"strict: attestation failed", strict, func(s *DeviceState) {
			s.Posture.Level = PostureTrusted
			s.AuthMethod = "biometric"
			s.Attestation.Verified = false
		}, []string{"attestation_required"}},
		{"strict: attestation old", strict, func(s *DeviceState) {
			s.Posture.Level = PostureTrusted
			s.AuthMethod = "biometric"
			s.Attestation.At = now.Add(-3 * time.Hour)
		}, []string{"attestation_required"}},
		{"strict: all met", strict, func(s *DeviceState) {
			s.Posture.Level = PostureTrusted
			s.AuthMethod = "biometric"
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			st := good()
			c.mutate(&st)
			d := Decide(&c.req, &st, now)
			if got := d.Reasons.Codes(); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("reasons = %v, want %v", got, c.want)
			}
			if d.Allowed() != (len(c.want) == 0) {
				t.Fatalf("Allowed = %v with reasons %v", d.Allowed(), d.Reasons)
			}
		})
	}
}

func TestReasonCodesStable(t *testing.T) {
	// Reason values are persisted in audit logs: pin them.
	want := map[Reason]string{
		1: "locked", 2: "auth_stale", 4: "auth_method", 8: "app_not_authorized",
		16: "not_associated", 32: "revoked", 64: "posture_insufficient",
		128: "os_trust_required", 256: "attestation_required", 512: "key_state",
		1024: "audit_unavailable",
	}
	for r, code := range want {
		if r.Code() != code {
			t.Errorf("Reason %d = %q, want %q", r, r.Code(), code)
		}
		if back, ok := ParseReason(code); !ok || back != r {
			t.Errorf("ParseReason(%q) = %v, %v", code, back, ok)
		}
	}
	if Reasons(1 << 11).Valid() {
		t.Error("unknown reason bit accepted as valid")
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	req, _ := Default(ClassIdentity)
	st := good()
	if n := testing.AllocsPerRun(100, func() { Decide(&req, &st, now) }); n != 0 {
		t.Fatalf("Decide allocates %v times", n)
	}
}

func randomRequirements(r *rand.Rand) Requirements {
	methods := []string{"passphrase", "biometric", "pin"}
	var ms []string
	for _, m := range methods {
		if r.IntN(3) == 0 {
			ms = append(ms, m)
		}
	}
	return Requirements{
		Unlocked: r.IntN(2) == 0, AuthWithin: time.Duration(r.IntN(3)) * time.Minute,
		AuthMethods: ms, AppAuthorized: r.IntN(2) == 0, Associated: r.IntN(2) == 0,
		MinPosture: PostureLevel(r.IntN(4)), OSTrust: r.IntN(2) == 0,
		Attestation: r.IntN(2) == 0, AttestationMaxAge: time.Duration(r.IntN(3)) * time.Hour,
	}
}

func randomState(r *rand.Rand) DeviceState {
	methods := []string{"passphrase", "biometric", "pin", ""}
	return DeviceState{
		LastAuth: now.Add(-time.Duration(r.IntN(240)) * time.Second), AuthMethod: methods[r.IntN(4)],
		Unlocked: r.IntN(2) == 0, AppAuthorized: r.IntN(2) == 0, Association: Association(r.IntN(4)),
		Revoked: r.IntN(8) == 0, Posture: Posture{Level: PostureLevel(r.IntN(4))},
		OSTrust:     OSTrust{Deployed: r.IntN(2) == 0, Trusted: r.IntN(2) == 0},
		Attestation: Attestation{Applicable: r.IntN(2) == 0, Verified: r.IntN(2) == 0, At: now.Add(-time.Duration(r.IntN(180)) * time.Minute)},
	}
}

// Property: whatever an organisation adds, a tightened policy never allows
// what either input policy denies.
func TestTightenNeverLoosens(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		a, b := randomRequirements(r), randomRequirements(r)
		st := randomState(r)
		tight := a.Tighten(b)
		da, db, dt := Decide(&a, &st, now), Decide(&b, &st, now), Decide(&tight, &st, now)
		if dt.Allowed() && (!da.Allowed() || !db.Allowed()) {
			t.Fatalf("tightened allows what an input denies:\na=%+v (%v)\nb=%+v (%v)\nt=%+v\nstate=%+v", a, da.Reasons, b, db.Reasons, tight, st)
		}
		if st.Revoked && dt.Allowed() {
			t.Fatal("revoked device allowed")
		}
	}
}

func TestDefaults(t *testing.T) {
	for _, c := range []Class{ClassIdentity, ClassKEM, ClassSession, ClassBinding} {
		if _, ok := Default(c); !ok {
			t.Errorf("no default for %s", c)
		}
	}
	if _, ok := Default("nope"); ok {
		t.Error("default for unknown class")
	}
}

func TestPostureOrder(t *testing.T) {
	order := []PostureLevel{PostureCompromised, PostureUnknown, PostureDegraded, PostureTrusted}
	for i, a := range order {
		for j, b := range order {
			if a.AtLeast(b) != (i >= j) {
				t.Errorf("%v.AtLeast(%v) = %v", a, b, a.AtLeast(b))
			}
		}
	}
	if PostureLevel(9).AtLeast(PostureCompromised) {
		t.Error("invalid level meets a minimum")
	}
}
