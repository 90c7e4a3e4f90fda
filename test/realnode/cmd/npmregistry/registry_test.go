package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A scoped package with a release and a platform "version" (as
// @openai/codex publishes its binaries), one with a tarball, one without.
func TestRegistry(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "manifests", "openai-codex-0.1.0.json"),
		`{"name":"@openai/codex","version":"0.1.0","readme":"long","time":{"x":"y"},"bin":{"codex":"bin/codex.js"},
		  "dist":{"integrity":"sha512-a","tarball":"https://registry.npmjs.org/@openai/codex/-/codex-0.1.0.tgz"}}`)
	write(t, filepath.Join(dir, "manifests", "openai-codex-0.1.0-linux-x64.json"),
		`{"name":"@openai/codex","version":"0.1.0-linux-x64","os":["linux"],"cpu":["x64"],"dist":{"integrity":"sha512-b"}}`)
	write(t, filepath.Join(dir, "tarballs", "openai-codex-0.1.0.tgz"), "the tarball")
	srv := httptest.NewServer(func() http.Handler {
		r, err := load(dir)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}())
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/@openai%2fcodex")
	if code != 200 {
		t.Fatalf("packument: %d %s", code, body)
	}
	var doc struct {
		Name     string            `json:"name"`
		DistTags map[string]string `json:"dist-tags"`
		Versions map[string]map[string]any
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Name != "@openai/codex" || doc.DistTags["latest"] != "0.1.0" || len(doc.Versions) != 2 {
		t.Errorf("packument: %s", body)
	}
	v := doc.Versions["0.1.0"]
	if v["readme"] != nil || v["time"] != nil || v["bin"] == nil {
		t.Errorf("version document keeps what npm reads only: %v", v)
	}
	tarball := v["dist"].(map[string]any)["tarball"].(string)
	if tarball != srv.URL+"/-/tarballs/openai-codex-0.1.0.tgz" {
		t.Errorf("tarball address %q", tarball)
	}
	if code, body := get(strings.TrimPrefix(tarball, srv.URL)); code != 200 || body != "the tarball" {
		t.Errorf("tarball: %d %q", code, body)
	}
	// The platform package has a document and no tarball.
	if code, _ := get("/-/tarballs/openai-codex-0.1.0-linux-x64.tgz"); code != 404 {
		t.Errorf("a tarball that is not here: %d", code)
	}
	for _, p := range []string{"/left-pad", "/-/tarballs/../manifests/openai-codex-0.1.0.json"} {
		if code, _ := get(p); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/@openai%2fcodex", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("PUT: %v %v", resp, err)
	}
}

func TestLoadRefusesWhatIsNotAVersionDocument(t *testing.T) {
	dir := t.TempDir()
	if _, err := load(dir); err == nil {
		t.Error("an empty directory: no error")
	}
	write(t, filepath.Join(dir, "manifests", "x.json"), `{"name":"x"}`)
	if _, err := load(dir); err == nil || !strings.Contains(err.Error(), "not a version document") {
		t.Errorf("a document without version: %v", err)
	}
}
