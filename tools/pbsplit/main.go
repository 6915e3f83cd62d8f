// Command pbsplit rewrites Go references to the replicated-state schema after
// command.proto and state.proto moved from package rpc/pb to fsm/fsmpb: every
// selector pb.X, where pb is the file's import of rpc/pb and X is declared in
// fsm/fsmpb, becomes fsmpb.X (with the same rewrite in the file's comments,
// so doc references stay right), the fsmpb import is added and the rpc/pb
// import is dropped once nothing uses it.
//
// It walks every non-generated .go file of the module (tests included,
// nested modules, testdata and hidden directories skipped), edits only the
// bytes it has to and gofmt-formats what it changed. It is idempotent: run it
// again after merging a branch written against the old layout.
//
//	go run ./tools/pbsplit          # from anywhere inside the module
//	go run ./tools/pbsplit -n       # list the files it would change
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

const (
	module    = "github.com/groundskeeper-dev/groundskeeper"
	oldPath   = module + "/rpc/pb"
	newPath   = module + "/fsm/fsmpb"
	newName   = "fsmpb"
	newDir    = "fsm/fsmpb"
	oldDir    = "rpc/pb"
	toolLabel = "pbsplit"
)

func main() {
	dryRun := flag.Bool("n", false, "list the files that would change, write nothing")
	flag.Parse()
	if err := run(*dryRun); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", toolLabel, err)
		os.Exit(1)
	}
}

func run(dryRun bool) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	moved, err := declared(filepath.Join(root, newDir))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: generate it first (make proto)", newDir)
	}
	if err != nil {
		return fmt.Errorf("read the moved identifiers: %w", err)
	}
	if len(moved) == 0 {
		return fmt.Errorf("%s declares nothing: generate it first (make proto)", newDir)
	}
	// A name still declared by rpc/pb is ambiguous: the rewrite would send
	// it to the wrong package.
	kept, err := declared(filepath.Join(root, oldDir))
	if err != nil {
		return fmt.Errorf("read the identifiers rpc/pb keeps: %w", err)
	}
	var both []string
	for name := range moved {
		if kept[name] {
			both = append(both, name)
		}
	}
	if len(both) > 0 {
		sort.Strings(both)
		return fmt.Errorf("both %s and %s declare %s: regenerate both (make proto)", oldDir, newDir, strings.Join(both, ", "))
	}

	changed := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			name := d.Name()
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module is not ours to rewrite
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out, err := rewrite(path, src, moved)
		if err != nil {
			return err
		}
		if out == nil {
			return nil
		}
		changed++
		rel, _ := filepath.Rel(root, path)
		fmt.Println(rel)
		if dryRun {
			return nil
		}
		return os.WriteFile(path, out, 0o644)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: %d files changed\n", toolLabel, changed)
	return nil
}

// moduleRoot is the nearest directory at or above the working directory
// whose go.mod declares this module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(data) == module {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run it inside the %s module", module)
		}
		dir = parent
	}
}

func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// declared is the set of exported package-level names declared by the
// non-test .go files in dir.
func declared(dir string) (map[string]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				if decl.Recv == nil && decl.Name.IsExported() {
					names[decl.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					switch spec := spec.(type) {
					case *ast.TypeSpec:
						if spec.Name.IsExported() {
							names[spec.Name.Name] = true
						}
					case *ast.ValueSpec:
						for _, n := range spec.Names {
							if n.IsExported() {
								names[n.Name] = true
							}
						}
					}
				}
			}
		}
	}
	return names, nil
}

// edit replaces src[start:end] with text.
type edit struct {
	start, end int
	text       string
}

// rewrite returns the new content of the file, or nil when it needs no
// change.
func rewrite(path string, src []byte, moved map[string]bool) ([]byte, error) {
	fset := token.NewFileSet()
	// Object resolution on: an identifier named like the import but bound
	// to a local declaration has a non-nil Obj and is left alone.
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	oldSpec, oldDecl := findImport(f, oldPath)
	if oldSpec == nil {
		return nil, nil
	}
	oldName := "pb"
	if oldSpec.Name != nil {
		oldName = oldSpec.Name.Name
	}
	if oldName == "_" || oldName == "." {
		return nil, fmt.Errorf("%s: imports %s as %s; rewrite it by hand", path, oldPath, oldName)
	}
	newSpec, _ := findImport(f, newPath)
	name := newName
	if newSpec != nil && newSpec.Name != nil {
		name = newSpec.Name.Name
	}

	off := func(p token.Pos) int { return fset.Position(p).Offset }
	var edits []edit
	oldUses := 0
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if !ok || x.Name != oldName || x.Obj != nil {
			return true
		}
		if !moved[sel.Sel.Name] {
			oldUses++
			return true
		}
		edits = append(edits, edit{off(x.Pos()), off(x.End()), name})
		return true
	})
	commentEdits := rewriteComments(f, oldName, name, moved, off)
	if len(edits) == 0 && len(commentEdits) == 0 {
		return nil, nil
	}
	if len(edits) > 0 && newSpec == nil {
		if fileDeclares(f, name) {
			return nil, fmt.Errorf("%s: declares %s, which the new import would shadow; rewrite it by hand", path, name)
		}
		quoted := strconv.Quote(newPath)
		switch {
		case oldUses == 0:
			// The old import goes: its spec becomes the new one, keeping
			// its place and any trailing comment.
			edits = append(edits, edit{off(oldSpec.Pos()), off(oldSpec.Path.End()), quoted})
		case oldDecl.Lparen.IsValid():
			edits = append(edits, edit{off(oldSpec.End()), off(oldSpec.End()), "\n\t" + quoted})
		default:
			edits = append(edits, edit{off(oldDecl.End()), off(oldDecl.End()), "\nimport " + quoted})
		}
	} else if oldUses == 0 && len(edits) > 0 {
		// Both imported already; the old one is now unused.
		edits = append(edits, removeImport(src, fset, oldSpec, oldDecl))
	}
	edits = append(edits, commentEdits...)

	sort.Slice(edits, func(i, j int) bool { return edits[i].start > edits[j].start })
	out := append([]byte(nil), src...)
	for i, e := range edits {
		if i > 0 && e.end > edits[i-1].start {
			return nil, fmt.Errorf("%s: overlapping edits at offset %d", path, e.start)
		}
		out = append(out[:e.start:e.start], append([]byte(e.text), out[e.end:]...)...)
	}
	formatted, err := format.Source(out)
	if err != nil {
		return nil, fmt.Errorf("%s: the rewrite does not format: %w", path, err)
	}
	if bytes.Equal(formatted, src) {
		return nil, nil
	}
	return formatted, nil
}

// findImport is the file's import spec of path and the declaration holding it.
func findImport(f *ast.File, path string) (*ast.ImportSpec, *ast.GenDecl) {
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.IMPORT {
			continue
		}
		for _, spec := range gd.Specs {
			is := spec.(*ast.ImportSpec)
			if p, err := strconv.Unquote(is.Path.Value); err == nil && p == path {
				return is, gd
			}
		}
	}
	return nil, nil
}

// removeImport deletes spec's line (or its whole declaration when it is the
// only spec of an unparenthesized import).
func removeImport(src []byte, fset *token.FileSet, spec *ast.ImportSpec, decl *ast.GenDecl) edit {
	start, end := fset.Position(spec.Pos()).Offset, fset.Position(spec.End()).Offset
	if !decl.Lparen.IsValid() {
		start, end = fset.Position(decl.Pos()).Offset, fset.Position(decl.End()).Offset
	}
	if spec.Comment != nil {
		end = fset.Position(spec.Comment.End()).Offset
	}
	for start > 0 && (src[start-1] == ' ' || src[start-1] == '\t') {
		start--
	}
	if end < len(src) && src[end] == '\n' {
		end++
	}
	return edit{start, end, ""}
}

// fileDeclares reports whether the file declares name at package level or
// anywhere in a function (a conservative check against shadowing).
func fileDeclares(f *ast.File, name string) bool {
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name && id.Obj != nil {
			found = true
		}
		return !found
	})
	return found
}

// rewriteComments rewrites oldName.X to newName.X in the file's comments for
// every moved X.
func rewriteComments(f *ast.File, oldName, newName string, moved map[string]bool, off func(token.Pos) int) []edit {
	re := regexp.MustCompile(`\b` + regexp.QuoteMeta(oldName) + `\.([A-Z][A-Za-z0-9_]*)\b`)
	var edits []edit
	for _, cg := range f.Comments {
		for _, c := range cg.List {
			base := off(c.Pos())
			for _, m := range re.FindAllStringSubmatchIndex(c.Text, -1) {
				// The match must not continue a longer name (xpb.Task,
				// a.pb.Task, rpc/pb.Task).
				if m[0] > 0 && continuesName(c.Text[m[0]-1]) {
					continue
				}
				if moved[c.Text[m[2]:m[3]]] {
					edits = append(edits, edit{base + m[0], base + m[0] + len(oldName), newName})
				}
			}
		}
	}
	return edits
}

func continuesName(b byte) bool {
	return b == '_' || b == '.' || b == '/' || (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
}
