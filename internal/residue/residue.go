// Package residue finds leftover bytes on disk, for tests that prove an
// erasure: it walks a directory and reports every file that still holds one
// of the given needles.
//
// Every file is scanned byte for byte. Pebble tables (*.sst) are also
// decoded, keys, values and range deletions, because prefix and block
// compression hide their contents from a byte scan (see
// docs/privacy.md). Pebble's WAL and MANIFEST and JetStream's block files
// are written raw, so the byte scan covers them.
package residue

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
)

// Where a needle was found.
const (
	InFile        = "file bytes"
	InSSTKey      = "sstable key"
	InSSTValue    = "sstable value"
	InSSTRangeDel = "sstable range deletion"
	sstSuffix     = ".sst"
)

// Finding is one needle in one file.
type Finding struct {
	Path   string // the file, as found under the scanned directory
	Needle int    // index of the needle in the arguments to Scan
	Where  string // InFile, InSSTKey, InSSTValue or InSSTRangeDel
}

func (f Finding) String() string {
	return fmt.Sprintf("needle %d in %s (%s)", f.Needle, f.Path, f.Where)
}

// Scan walks dir and returns every file that holds one of needles, raw or,
// for Pebble tables, after decoding. It fails the test if dir cannot be
// read or a table cannot be decoded (such a table is not verified); files
// that disappear during the walk (Pebble deletes obsolete files in the
// background) are skipped. Empty needles are refused.
func Scan(tb testing.TB, dir string, needles ...[]byte) []Finding {
	tb.Helper()
	findings, err := ScanDir(dir, needles...)
	if err != nil {
		tb.Fatalf("residue: %v", err)
	}
	return findings
}

// ScanDir is Scan returning its error: dir unreadable, an empty needle, or
// a Pebble table that does not decode (naming the file).
func ScanDir(dir string, needles ...[]byte) ([]Finding, error) {
	for i, n := range needles {
		if len(n) == 0 {
			return nil, fmt.Errorf("needle %d is empty", i)
		}
	}
	var findings []Finding
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		findings = append(findings, scanBytes(path, InFile, data, needles)...)
		if strings.HasSuffix(path, sstSuffix) {
			found, err := scanSSTable(path, data, needles)
			if err != nil {
				return fmt.Errorf("decode %s: %w", path, err)
			}
			findings = append(findings, found...)
		}
		return nil
	})
	return findings, err
}

// Forms returns b with its hex (lower and upper case) and base64 (standard
// and URL, padded and raw) encodings: the ways a secret usually lands in a
// text format such as JSON.
func Forms(b []byte) [][]byte {
	lower := hex.EncodeToString(b)
	return [][]byte{
		b,
		[]byte(lower),
		[]byte(strings.ToUpper(lower)),
		[]byte(base64.StdEncoding.EncodeToString(b)),
		[]byte(base64.RawStdEncoding.EncodeToString(b)),
		[]byte(base64.URLEncoding.EncodeToString(b)),
		[]byte(base64.RawURLEncoding.EncodeToString(b)),
	}
}

func scanBytes(path, where string, data []byte, needles [][]byte) []Finding {
	var out []Finding
	for i, n := range needles {
		if bytes.Contains(data, n) {
			out = append(out, Finding{Path: path, Needle: i, Where: where})
		}
	}
	return out
}

// scanSSTable decodes a Pebble table and scans its point keys, values and
// range deletion bounds. Each needle is reported at most once per place.
func scanSSTable(path string, data []byte, needles [][]byte) ([]Finding, error) {
	opts := &pebble.Options{}
	opts.EnsureDefaults()
	r, err := sstable.NewMemReader(data, opts.MakeReaderOptions())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	seen := map[Finding]bool{}
	var out []Finding
	note := func(where string, b []byte) {
		for _, f := range scanBytes(path, where, b, needles) {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	iter, err := r.NewIter(sstable.NoTransforms, nil, nil, sstable.AssertNoBlobHandles)
	if err != nil {
		return nil, err
	}
	for kv := iter.First(); kv != nil; kv = iter.Next() {
		note(InSSTKey, kv.K.UserKey)
		v, _, err := kv.Value(nil)
		if err != nil {
			_ = iter.Close()
			return nil, err
		}
		note(InSSTValue, v)
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	rangeDels, err := r.NewRawRangeDelIter(context.Background(), sstable.NoFragmentTransforms, sstable.NoReadEnv)
	if err != nil {
		return nil, err
	}
	if rangeDels != nil {
		defer rangeDels.Close()
		span, err := rangeDels.First()
		for ; span != nil; span, err = rangeDels.Next() {
			note(InSSTRangeDel, span.Start)
			note(InSSTRangeDel, span.End)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
