package localcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A module binary's cache key moves with every pin and source of its module
// and with the flags, and with nothing else: a changed go.sum must build
// again, a README beside the module must not.
func TestModuleKeyFollowsPinsAndFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/peer\n\nrequire example.com/x v1.0.0\n")
	write("go.sum", "example.com/x v1.0.0 h1:a=\n")
	write("tools.go", "//go:build tools\n\npackage peer\n")
	m := ModuleBinary{Name: "x", ModuleDir: dir, Package: "example.com/x/cmd/x", LDFlags: "-s -w"}
	key := func(m ModuleBinary) string {
		t.Helper()
		files, err := moduleInputs(dir)
		if err != nil {
			t.Fatal(err)
		}
		return moduleKey("go1.26.8", m, files)
	}
	base := key(m)

	write("README.md", "not an input\n")
	if got := key(m); got != base {
		t.Errorf("a README changed the key: %s, was %s", got, base)
	}
	other := m
	other.LDFlags = "-s -w -X example.com/x/version.v=1"
	if key(other) == base {
		t.Error("other ldflags kept the key")
	}
	write("go.sum", "example.com/x v1.0.1 h1:b=\n")
	if key(m) == base {
		t.Error("a changed go.sum kept the key")
	}
}

func TestBuildModuleBinaryWithoutGoMod(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	_, err := BuildModuleBinary(context.Background(), nil, ModuleBinary{Name: "x", ModuleDir: dir, Package: "example.com/x"})
	if err == nil || !strings.Contains(err.Error(), "no go.mod in "+dir) {
		t.Fatalf("BuildModuleBinary of a directory without go.mod: %v, want it to say so", err)
	}
}
