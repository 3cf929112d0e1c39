package residue

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScanFindsNeedleInPlainFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	path := filepath.Join(dir, "a", "b", "000001.blk")
	require.NoError(t, os.WriteFile(path, []byte("head alice@example.com tail"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "other"), []byte("nothing here"), 0o600))

	got := Scan(t, dir, []byte("bob@example.com"), []byte("alice@example.com"))
	assert.Equal(t, []Finding{{Path: path, Needle: 1, Where: InFile}}, got)
}

func TestScanCleanDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "f"), []byte("nothing here"), 0o600))
	writeSSTable(t, filepath.Join(dir, "000005.sst"), map[string][]byte{"k1": []byte("v1"), "k2": []byte("v2")})
	assert.Empty(t, Scan(t, dir, []byte("alice@example.com")))
	assert.Empty(t, Scan(t, t.TempDir(), []byte("alice@example.com")), "an empty dir")
}

// TestScanDecodesSSTables: a needle that compression hides from a byte
// scan is found in the decoded table, as a key and as a value.
func TestScanDecodesSSTables(t *testing.T) {
	dir := t.TempDir()
	// Prefix compression stores only what a key adds to its neighbour, and
	// Snappy turns the run of x's into a back-reference: neither needle is
	// in the file as such.
	keyNeedle := []byte("subject/person-100@example.com")
	valueNeedle := append(bytes.Repeat([]byte("x"), 64), []byte("evidence 203.0.113.7")...)
	kvs := map[string][]byte{}
	for i := range 200 {
		kvs[fmt.Sprintf("subject/person-%03d@example.com", i)] = []byte("v")
	}
	kvs["value/1"] = append(bytes.Repeat([]byte("x"), 256), valueNeedle...)
	path := filepath.Join(dir, "000007.sst")
	writeSSTable(t, path, kvs)

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, valueNeedle), "the value is compressed")
	require.False(t, bytes.Contains(raw, keyNeedle), "the key is prefix-compressed")

	got := Scan(t, dir, keyNeedle, valueNeedle)
	assert.ElementsMatch(t, []Finding{
		{Path: path, Needle: 0, Where: InSSTKey},
		{Path: path, Needle: 1, Where: InSSTValue},
	}, got)
}

func TestScanFindsRangeDeletions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "000011.sst")
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{TableFormat: sstable.TableFormatMax})
	require.NoError(t, w.DeleteRange([]byte("subject/dave@example.com/"), []byte("subject/dave@example.com0")))
	require.NoError(t, w.Close())
	assert.Contains(t, Scan(t, dir, []byte("dave@example.com/")), Finding{Path: path, Needle: 0, Where: InSSTRangeDel})
}

// TestScanPebbleDB runs the scanner over a real database: a deleted key
// stays in the WAL (found raw) until the database is reopened.
func TestScanPebbleDB(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quiet{}})
	require.NoError(t, err)
	needle := []byte("carol@example.com")
	require.NoError(t, db.Set(needle, []byte("granted"), pebble.Sync))
	require.NoError(t, db.Flush())
	require.NoError(t, db.Close())
	got := Scan(t, dir, needle)
	var where []string
	for _, f := range got {
		where = append(where, f.Where)
	}
	assert.Contains(t, where, InSSTKey, "the flushed table holds the key: %v", got)
}

func TestScanRefusesEmptyNeedle(t *testing.T) {
	_, err := ScanDir(t.TempDir(), []byte("a"), nil)
	assert.ErrorContains(t, err, "needle 1 is empty")
}

func TestScanRefusesUndecodableSSTable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "000009.sst")
	require.NoError(t, os.WriteFile(path, []byte("not a table"), 0o600))
	_, err := ScanDir(dir, []byte("a"))
	assert.ErrorContains(t, err, path)
}

func TestForms(t *testing.T) {
	forms := Forms([]byte{0xfb, 0xff, 0x01})
	for _, want := range []string{"\xfb\xff\x01", "fbff01", "FBFF01", "+/8B", "-_8B"} {
		assert.Contains(t, forms, []byte(want))
	}
}

// writeSSTable writes kvs as a Snappy-compressed Pebble table in the
// newest format.
func writeSSTable(t *testing.T, path string, kvs map[string][]byte) {
	t.Helper()
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	w := sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{
		TableFormat: sstable.TableFormatMax,
		Compression: sstable.SnappyCompression,
	})
	keys := make([]string, 0, len(kvs))
	for k := range kvs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		require.NoError(t, w.Set([]byte(k), kvs[k]))
	}
	require.NoError(t, w.Close())
}

// quiet is a pebble.Logger that drops what Pebble logs.
type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
