package mcp

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/testexec"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

// hostRunner runs a copy's sandbox side on this machine.
type hostRunner = testexec.HostRunner

// The root's handle alone keeps copies in, with no check before it: every
// way out of rootTree, handed straight to the copies, is refused and
// nothing outside is read or written.
func TestCopiesThroughTheRootRefuseEveryWayOut(t *testing.T) {
	root, outside := rootTree(t)
	r, err := newLocalRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	box := t.TempDir()
	if err := os.WriteFile(filepath.Join(box, "authorized_keys"), []byte("ATTACKER\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range []string{"escape", "escape/secret", "escape-file", "relative-out/secret", "repo/up", "chain/secret", "repo/etc-link/passwd", "../x"} {
		into := filepath.Join(box, "in", filepath.Base(p)) + "/"
		if err := transfer.CopyToSandboxFrom(ctx, &hostRunner{}, r.fs, p, into, io.Discard); err == nil {
			t.Errorf("copy in of %q succeeded", p)
		}
		if b, err := os.ReadFile(filepath.Join(into, filepath.Base(p))); err == nil {
			t.Errorf("copy in of %q carried %q", p, b)
		}
	}
	for _, p := range []string{"escape/", "escape/new", "chain/x/", "relative-out/", "repo/up/new", "repo/etc-link/x", "../new"} {
		if err := transfer.CopyFromSandboxIn(ctx, &hostRunner{}, box+"/authorized_keys", r.fs, p, transfer.Limits{}, io.Discard); err == nil {
			t.Errorf("copy out to %q succeeded", p)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("something was written outside the root: %v", entries)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "outside" {
		t.Error("the file outside the root changed")
	}
	// And inside it, copies work both ways.
	if err := transfer.CopyToSandboxFrom(ctx, &hostRunner{}, r.fs, "inside", box+"/ok/", io.Discard); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(box, "ok/inside/main.go")); err != nil || string(b) != "package main\n" {
		t.Errorf("copied in through an inside link: %q, %v", b, err)
	}
	if err := transfer.CopyFromSandboxIn(ctx, &hostRunner{}, box+"/authorized_keys", r.fs, "inside/keys", transfer.Limits{}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "repo/keys")); err != nil || string(b) != "ATTACKER\n" {
		t.Errorf("copied out through an inside link: %q, %v", b, err)
	}
}
