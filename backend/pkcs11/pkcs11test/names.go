package pkcs11test

// The setups' names (subtest names in the suites), also without cgo.
const (
	FullName         = "softhsm2-full"
	NoGCMName        = "softhsm2-no-gcm"
	ECOnlyName       = "softhsm2-ec-only"
	OpenCryptokiName = "opencryptoki"
	ECAdoptedName    = "softhsm2-ec-adopted"
)

// Names lists the setups' names in the order All lists the setups.
func Names() []string {
	return []string{FullName, NoGCMName, ECOnlyName, OpenCryptokiName, ECAdoptedName}
}
