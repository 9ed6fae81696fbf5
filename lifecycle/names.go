package lifecycle

import "fmt"

// The enums of this package (State, Cause, Kind) number their values from
// 1 and keep their names in a table indexed by value, names[0] unused.

// nameOf is v's name in names, or what(v) for a value out of range.
func nameOf[T ~uint8](names []string, v T, what string) string {
	if v > 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", what, uint8(v))
}

// valueOf is the value named s in names, or false.
func valueOf[T ~uint8](names []string, s string) (T, bool) {
	for i := 1; i < len(names); i++ {
		if names[i] == s {
			return T(i), true
		}
	}
	return 0, false
}
