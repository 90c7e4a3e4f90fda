package realnode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

// A suite.log line says which tests ran (SuiteKey): a run of another set —
// a branch that added a 20-minute test, or took one out — says nothing about
// what this tree's tests take, and the estimate uses only runs of the same
// set.

var topLevelTest = regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)

// SuiteKey names the set of top-level tests in this package's test files:
// the first 12 hex digits of the sha256 of their sorted names. Bodies may
// change without changing it; a test added or removed does.
func SuiteKey() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	return suiteKeyOf(filepath.Dir(file))
}

func suiteKeyOf(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return "", err
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		for _, m := range topLevelTest.FindAllSubmatch(b, -1) {
			names = append(names, string(m[1]))
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no tests in %s to name the suite by", dir)
	}
	slices.Sort(names)
	sum := sha256.Sum256([]byte(strings.Join(names, "\n")))
	return hex.EncodeToString(sum[:])[:12], nil
}
