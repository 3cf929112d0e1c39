package wire_test

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/consentledger/consent"

// imports returns the packages of this module that the package at path
// imports, directly or not (test files aside).
func imports(t *testing.T, path string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		dir := filepath.Join("..", filepath.FromSlash(strings.TrimPrefix(p, module+"/")))
		pkg, err := build.ImportDir(dir, 0)
		require.NoError(t, err, p)
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module+"/") && !seen[imp] {
				seen[imp] = true
				walk(imp)
			}
		}
	}
	walk(path)
	return seen
}

// The layering the split into wire, ledger and client exists for: the
// wire types import neither side, and neither side imports the other.
func TestWireImportsNeitherSideAndTheServerNotTheClient(t *testing.T) {
	wire := imports(t, module+"/wire")
	assert.False(t, wire[module+"/ledger"], "wire imports ledger")
	assert.False(t, wire[module+"/client"], "wire imports client")
	assert.False(t, imports(t, module+"/ledger")[module+"/client"], "ledger imports client")
	client := imports(t, module+"/client")
	assert.True(t, client[module+"/wire"], "client speaks through wire")
	assert.False(t, client[module+"/ledger"], "client imports the server")
}
