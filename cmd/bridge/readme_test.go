package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReliabilityTableNamesRealTests: every test the Reliability table of
// docs/reliability.md names as the proof of a line exists, so that the
// table cannot point at a test that was renamed or removed.
func TestReliabilityTableNamesRealTests(t *testing.T) {
	b, err := os.ReadFile("../../docs/reliability.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## Reliability\n")
	if i < 0 {
		t.Fatal("docs/reliability.md has no Reliability section")
	}
	section := readme[i+len("## Reliability\n"):]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	named := regexp.MustCompile("`(Test[A-Za-z0-9_]+)").FindAllStringSubmatch(section, -1)
	if len(named) < 10 {
		t.Fatalf("the Reliability table names %d tests; it should name the proof of every line", len(named))
	}
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(t \*testing\.T\)`)
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllStringSubmatch(string(src), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range named {
		if !defined[m[1]] {
			t.Errorf("docs/reliability.md names %s, which no test file defines", m[1])
		}
	}
}
