//go:build race

package jsexample

// raceFlags builds consentd with the race detector, as this test is built.
var raceFlags = []string{"-race"}
