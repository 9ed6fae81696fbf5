package chain

import "testing"

// Scenarios in the small chain language (see world_test.go). Each reads as
// the story it checks; "!ErrX" marks a statement that must be refused.
var scenarios = []struct {
	name, script string
}{
	{"add and revoke", `
		genesis A; add B by A; expect active A B
		revoke B by A; expect active A; expect revoked B`},
	{"revoked device signs nothing", `
		genesis A; add B by A; add C by B; revoke B by A
		add D by B !ErrSignerRevoked
		revoke C by B !ErrSignerRevoked
		rotate-recovery by B !ErrSignerRevoked
		expect active A C`},
	{"revoked device never re-added", `
		genesis A; add B by A; revoke B by A
		add B by A !ErrDeviceIDReused; expect active A`},
	{"active device added twice", `genesis A; add B by A; add B by A !ErrDeviceExists`},
	{"ghost device", `genesis A; add G !ErrNoDeviceApproval; expect active A`},
	{"approval by a device not yet added", `genesis A; add C by B !ErrSignerUnknown`},
	{"organisation alone never adds", `
		genesis A managed admin-approval
		add G by org !ErrNoDeviceApproval
		add B by A !ErrAdminApprovalRequired
		add B by A org; expect active A B`},
	{"organisation key on an unmanaged account", `genesis A; add B by A org !ErrNotManaged; revoke A by org !ErrNotManaged`},
	{"revocation authorities", `
		genesis A managed; add B by A; add C by A; add D by A
		revoke B by org; revoke C by recovery !ErrUnexpectedSignature; revoke D by D
		expect active A C; expect revoked B D`},
	{"the recovery key revokes nothing, not even during its own request", `
		genesis A; revoke A by recovery !ErrUnexpectedSignature
		request R; revoke A by recovery !ErrUnexpectedSignature
		veto by A; expect active A; expect no-pending`},
	{"a lost device is revoked by the recovered device, after the waiting period", `
		genesis A; request R; wait 24h; recover R
		revoke A by R; expect active R; expect revoked A`},
	{"rotation", `
		genesis A hw; add B by A; rotate A; rotate B kem; rotate B identity
		add C by A; add D by B; expect active A B C D`},
	{"replacement retires the old device", `
		genesis A; add B by A; replace B with C
		expect active A C; expect retired B
		add E by B !ErrSignerRevoked
		replace B with D !ErrDeviceNotActive`},
	{"recovery after the waiting period", `
		genesis A; request R; expect pending R
		recover R !ErrRecoveryTooEarly
		wait 23h59m; recover R !ErrRecoveryTooEarly
		wait 1m; recover R; expect active A R; expect no-pending
		add S by R; expect active A R S`},
	{"recovery vetoed", `
		genesis A; request R; veto by A; expect no-pending
		wait 24h; recover R !ErrRecoveryVetoed; expect active A
		request R2; wait 24h; recover R2; expect active A R2`},
	{"one pending recovery at a time", `genesis A; request R; request R2 !ErrRecoveryPending`},
	{"recovery with zero delay", `genesis A delay=0s; request R; recover R; expect active A R`},
	{"recovery needs admin review when policy says so", `
		genesis A managed admin-review; request R; wait 24h
		recover R !ErrAdminApprovalRequired; recover R org; expect active A R`},
	{"recovery key rotation cancels a pending request", `
		genesis A; request R; rotate-recovery by A; expect no-pending
		wait 24h; recover R !ErrRecoveryVetoed
		revoke A by recovery !ErrUnexpectedSignature; expect active A`},
	{"policy only on managed accounts", `genesis A; policy delay=1h !ErrNotManaged; genesis B !ErrGenesisNotFirst`},
	{"policy only by the organisation", `
		genesis A managed
		policy-by A admin-approval !ErrBadSignature
		policy admin-approval min=hardware-tpm
		add B by A org !ErrProtectionLevel
		add B by A org hw; expect active A B`},
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			newWorld(sc.name).run(t, sc.script)
		})
	}
}
