// Package archtest holds the module's architecture rules as tests: which
// binaries may reach which packages, which packages must stay free of
// I/O, and that internal/testkit is imported by tests only. The rules and their reasons are in docs/design/overview.md
// ("Layout and import rules"); arch_test.go enforces them with
// `go list -deps`. The package has no code of its own.
package archtest
