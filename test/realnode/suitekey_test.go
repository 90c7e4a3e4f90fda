package realnode

import (
	"os"
	"path/filepath"
	"testing"
)

// The key follows the set of top-level tests, not their bodies.
func TestSuiteKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key := func() string {
		t.Helper()
		k, err := suiteKeyOf(dir)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if _, err := suiteKeyOf(dir); err == nil {
		t.Fatal("a directory without tests has a key")
	}
	write("a_test.go", "package x\n\nfunc TestA(t *testing.T) {}\nfunc helper(t *testing.T) {}\n")
	write("b_test.go", "package x\n\nfunc TestB(t *testing.T) {\n\tt.Log(1)\n}\n")
	first := key()
	write("b_test.go", "package x\n\nfunc TestB(t *testing.T) {\n\tt.Log(2) // another body\n}\n")
	if key() != first {
		t.Error("a test's body changed the key")
	}
	write("c_test.go", "package x\n\nfunc TestAgentInstall(t *testing.T) {}\n")
	if key() == first {
		t.Error("a test added left the key as it was")
	}
	if k, err := SuiteKey(); err != nil || len(k) != 12 {
		t.Errorf("this package's key %q, %v", k, err)
	}
}
