package main

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes written as 200MiB, 1GiB, 512KiB or plain
// bytes; a flag.Value.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	size   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}

// String formats b in the largest unit that divides it.
func (b ByteSize) String() string {
	for _, u := range byteUnits[:3] {
		if b != 0 && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set parses s: a whole number with an optional unit (B, KiB, MiB, GiB).
func (b *ByteSize) Set(s string) error {
	for _, u := range byteUnits {
		digits, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(digits), 10, 64)
		if err != nil || n < 0 || n > (1<<62)/u.size {
			return fmt.Errorf("%q: want a size such as 200MiB, 1GiB or 0", s)
		}
		*b = ByteSize(n * u.size)
		return nil
	}
	return fmt.Errorf("%q: want a size such as 200MiB, 1GiB or 0", s) // unreachable: "" matches every string
}
