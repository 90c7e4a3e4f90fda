package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// versionFields are what npm reads of a version document to install it;
// `npm view --json` prints more (the package's times, every version's
// number, its readme), which a registry does not send per version.
var versionFields = []string{
	"name", "version", "description", "license", "bin", "directories", "main",
	"dependencies", "optionalDependencies", "peerDependencies", "peerDependenciesMeta",
	"bundleDependencies", "os", "cpu", "libc", "engines", "scripts", "hasInstallScript",
	"deprecated", "dist",
}

type registry struct {
	dir string
	// packages: name → version → version document.
	packages map[string]map[string]map[string]any
	tarballs map[string]bool
}

func load(dir string) (*registry, error) {
	r := &registry{dir: dir, packages: map[string]map[string]map[string]any{}, tarballs: map[string]bool{}}
	files, err := filepath.Glob(filepath.Join(dir, "manifests", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no version documents in %s/manifests", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var full map[string]any
		if err := json.Unmarshal(b, &full); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		doc := map[string]any{}
		for _, k := range versionFields {
			if v, ok := full[k]; ok {
				doc[k] = v
			}
		}
		name, _ := doc["name"].(string)
		version, _ := doc["version"].(string)
		dist, _ := doc["dist"].(map[string]any)
		if name == "" || version == "" || dist == nil {
			return nil, fmt.Errorf("%s: not a version document (name %q, version %q, dist %v)", f, name, version, dist)
		}
		tgz := strings.TrimSuffix(filepath.Base(f), ".json") + ".tgz"
		if _, err := os.Stat(filepath.Join(dir, "tarballs", tgz)); err == nil {
			r.tarballs[tgz] = true
		}
		// The tarball's address is filled in per request (the host npm
		// asked by); the file name is all a document keeps.
		dist["tarball"] = tgz
		if r.packages[name] == nil {
			r.packages[name] = map[string]map[string]any{}
		}
		r.packages[name][version] = doc
	}
	return r, nil
}

// packument is the package document npm asks for by name: every version
// and the dist-tag "latest" (the last release, not a prerelease, in the
// order of the version strings: each package here has one release).
func (r *registry) packument(name, base string) map[string]any {
	versions := map[string]any{}
	var releases, all []string
	for v, doc := range r.packages[name] {
		d := map[string]any{}
		for k, x := range doc {
			d[k] = x
		}
		dist := map[string]any{}
		for k, x := range doc["dist"].(map[string]any) {
			dist[k] = x
		}
		dist["tarball"] = base + "/-/tarballs/" + dist["tarball"].(string)
		d["dist"] = dist
		versions[v] = d
		all = append(all, v)
		if !strings.Contains(v, "-") {
			releases = append(releases, v)
		}
	}
	if len(releases) == 0 {
		releases = all
	}
	sort.Strings(releases)
	return map[string]any{
		"name":      name,
		"dist-tags": map[string]string{"latest": releases[len(releases)-1]},
		"versions":  versions,
	}
}

func (r *registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	status := r.serve(w, req)
	log.Printf("%s %s %s → %d", req.RemoteAddr, req.Method, req.URL.Path, status)
}

func (r *registry) serve(w http.ResponseWriter, req *http.Request) int {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, `{"error":"read-only registry"}`, http.StatusMethodNotAllowed)
		return http.StatusMethodNotAllowed
	}
	// A scoped name comes as /@scope%2fname; URL.Path has it decoded.
	path := strings.TrimPrefix(req.URL.Path, "/")
	if tgz, ok := strings.CutPrefix(path, "-/tarballs/"); ok {
		if !r.tarballs[tgz] {
			http.Error(w, `{"error":"no such tarball here"}`, http.StatusNotFound)
			return http.StatusNotFound
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeFile(w, req, filepath.Join(r.dir, "tarballs", tgz))
		return http.StatusOK
	}
	if r.packages[path] == nil {
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		return http.StatusNotFound
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r.packument(path, "http://"+req.Host))
	return http.StatusOK
}
