package fsm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbiddenImports would let Apply read a clock or randomness, or do I/O
// beyond reading a snapshot (io is allowed for Restore, crypto/sha256 for Hash).
var forbiddenImports = map[string]bool{
	"time":         true,
	"math/rand":    true,
	"math/rand/v2": true,
	"crypto/rand":  true,
	"os":           true,
	"os/exec":      true,
	"os/signal":    true,
	"net":          true,
	"net/http":     true,
	"io/ioutil":    true,
	"syscall":      true,
}

// TestPackageIsDeterministicStatically parses the package's non-test files and
// checks they import nothing that reads a clock, draws randomness or does
// file/network I/O, and that they start no goroutines.
func TestPackageIsDeterministicStatically(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	sawIO := false
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(".", name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		if f.Name.Name != "fsm" {
			t.Fatalf("%s is in package %s", name, f.Name.Name)
		}
		files++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", name, imp.Path.Value, err)
			}
			if forbiddenImports[path] || strings.HasPrefix(path, "net/") || strings.HasPrefix(path, "math/rand/") {
				t.Errorf("%s imports %q: Apply must not read a clock, draw randomness or do I/O", fset.Position(imp.Pos()), path)
			}
			if path == "io" {
				sawIO = true
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if g, ok := n.(*ast.GoStmt); ok {
				t.Errorf("%s: go statement; the fsm must not start goroutines", fset.Position(g.Pos()))
			}
			return true
		})
	}
	// Guard against the test silently checking nothing.
	if files < 5 || !sawIO {
		t.Fatalf("parsed %d files (saw io: %v); is the test running in the package directory?", files, sawIO)
	}
}
