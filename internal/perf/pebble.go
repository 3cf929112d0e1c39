package perf

import (
	"os"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// PebbleLoad writes n keys of a consent-sized value into a new Pebble
// database under dir in batches of 1000, as the projector does while it
// catches up, and returns how long that took: the Pebble floor of a
// rebuild.
func PebbleLoad(dir string, n int) (time.Duration, error) {
	path, err := os.MkdirTemp(dir, "consentbench-pebble-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(path)
	db, err := pebble.Open(path, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietPebble{}})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	value := make([]byte, 200)
	key := make([]byte, 0, 96)
	start := time.Now()
	b := db.NewBatch()
	for i := range n {
		key = append(append(key[:0], "c\x00acme\x00person-"...), strconv.Itoa(i)...)
		key = append(key, "@example.com\x00marketing_email"...)
		if err := b.Set(key, value, nil); err != nil {
			return 0, err
		}
		if (i+1)%1000 == 0 || i == n-1 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return 0, err
			}
			b.Reset()
		}
	}
	if err := db.LogData(nil, pebble.Sync); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic("pebble: fatal: " + format)
}
