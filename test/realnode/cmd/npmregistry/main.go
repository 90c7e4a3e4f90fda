// Command npmregistry is the smallest npm registry npm installs from: the
// package documents ("packuments") and tarballs of a fixed set of packages,
// read-only, over plain HTTP. The realnode tier runs it in the guest with the
// packages build/build.sh fetched (its agent-npm step), so the agent presets'
// install steps run exactly as written with npm pointed at it
// (NPM_CONFIG_REGISTRY), through the namespace's egress proxy.
//
//	npmregistry -dir D [-addr :8080]
//
// D/manifests/*.json are version documents as `npm view --json NAME@VERSION`
// prints them; D/tarballs/*.tgz the tarballs of those npm may unpack (a
// platform package of another platform has a document and no tarball: npm
// reads the document to skip it). Every request is logged on stderr.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	dir := flag.String("dir", "", "directory with manifests/ and tarballs/")
	addr := flag.String("addr", ":8080", "listen address")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: npmregistry -dir D [-addr :8080]")
		os.Exit(2)
	}
	reg, err := load(*dir)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving %d packages on %s", len(reg.packages), *addr)
	log.Fatal(http.ListenAndServe(*addr, reg))
}
