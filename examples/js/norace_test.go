//go:build !race

package jsexample

// raceFlags builds consentd without the race detector, as this test is built.
var raceFlags []string
