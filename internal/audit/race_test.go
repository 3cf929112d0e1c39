//go:build race

package audit_test

// raceEnabled: the race detector slows publishing about eightfold, so the
// large tests use fewer, larger events under it.
const raceEnabled = true
