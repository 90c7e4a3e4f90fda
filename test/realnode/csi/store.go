package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// store keeps volumes and snapshots below one directory:
//
//	volumes/<id>/       the volume's tree, bind-mounted into Pods
//	volumes/<id>.json   its volumeMeta, written last: a tree without one is
//	                    an unfinished create, redone by the next CreateVolume
//	snapshots/<id>.tar  the volume's tree at snapshot time (owners, modes)
//	snapshots/<id>.json its snapshotMeta, written last likewise
//
// IDs derive from the names the sidecars choose (pvc-<uid>,
// snapshot-<uid>), so a repeated create finds what the first one made
// without a database, as the CSI spec's idempotency requires.
type store struct {
	base string
	// One operation at a time: the sidecars retry, and a retried create
	// must not race the first.
	mu sync.Mutex
}

type volumeMeta struct {
	Name          string `json:"name"`
	CapacityBytes int64  `json:"capacityBytes"`
	// At most one of these: where the volume's content came from.
	SourceSnapshot string `json:"sourceSnapshot,omitempty"`
	SourceVolume   string `json:"sourceVolume,omitempty"`
}

type snapshotMeta struct {
	Name         string `json:"name"`
	SourceVolume string `json:"sourceVolume"`
	// SizeBytes is the source volume's capacity: the provisioner refuses to
	// restore into a claim smaller than this.
	SizeBytes int64 `json:"sizeBytes"`
	// CreatedUnixNano is when the tar was made.
	CreatedUnixNano int64 `json:"createdUnixNano"`
}

// errNotFound and errConflict are mapped to gRPC codes by the driver.
var (
	errNotFound = errors.New("not found")
	errConflict = errors.New("already exists with different parameters")
)

// newStore makes the two directories world-listable (not writable): the
// realnode test lists them through an unprivileged Pod to see that deleting
// a claim or a snapshot removed what the driver made.
func newStore(base string) (*store, error) {
	for _, d := range []string{"volumes", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &store{base: base}, nil
}

func idFor(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:10])
}

func (s *store) volumeDir(id string) string  { return filepath.Join(s.base, "volumes", id) }
func (s *store) volumeMeta(id string) string { return filepath.Join(s.base, "volumes", id+".json") }
func (s *store) snapshotTar(id string) string {
	return filepath.Join(s.base, "snapshots", id+".tar")
}
func (s *store) snapshotMeta(id string) string {
	return filepath.Join(s.base, "snapshots", id+".json")
}

// createVolume makes the volume named m.Name (empty, or with the content of
// m.SourceSnapshot or m.SourceVolume) and returns its ID. Asked again with
// the same parameters it returns the same volume.
func (s *store) createVolume(m volumeMeta) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := idFor("vol-", m.Name)
	var have volumeMeta
	switch err := readJSON(s.volumeMeta(id), &have); {
	case err == nil:
		if have != m {
			return "", fmt.Errorf("volume %q: %w (have %+v, asked for %+v)", m.Name, errConflict, have, m)
		}
		return id, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", err
	}
	dir := s.volumeDir(id)
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	// Without a meta file any tree is from an unfinished create.
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", err
	}
	var err error
	switch {
	case m.SourceSnapshot != "":
		if _, statErr := os.Stat(s.snapshotMeta(m.SourceSnapshot)); statErr != nil {
			err = fmt.Errorf("snapshot %s to restore: %w", m.SourceSnapshot, errNotFound)
			break
		}
		err = untar(s.snapshotTar(m.SourceSnapshot), tmp)
	case m.SourceVolume != "":
		if _, statErr := os.Stat(s.volumeMeta(m.SourceVolume)); statErr != nil {
			err = fmt.Errorf("volume %s to clone: %w", m.SourceVolume, errNotFound)
			break
		}
		err = copyTree(s.volumeDir(m.SourceVolume), tmp)
	}
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err == nil {
		err = writeJSON(s.volumeMeta(id), m)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		_ = os.RemoveAll(dir)
		return "", err
	}
	return id, nil
}

// volume reads a volume's meta; errNotFound if there is none.
func (s *store) volume(id string) (volumeMeta, error) {
	var m volumeMeta
	if !validID(id) {
		return m, fmt.Errorf("volume %q: %w", id, errNotFound)
	}
	err := readJSON(s.volumeMeta(id), &m)
	if errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("volume %s: %w", id, errNotFound)
	}
	return m, err
}

// deleteVolume removes the volume; a volume that is not there is deleted.
func (s *store) deleteVolume(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !validID(id) {
		return nil
	}
	// The meta first: a half-removed tree is then an unfinished create.
	if err := os.Remove(s.volumeMeta(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(s.volumeDir(id))
}

// createSnapshot tars the volume's tree and returns the snapshot's ID and
// meta. Asked again for the same name and source it returns the first one.
func (s *store) createSnapshot(name, sourceVolume string) (string, snapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := idFor("snap-", name)
	var have snapshotMeta
	switch err := readJSON(s.snapshotMeta(id), &have); {
	case err == nil:
		if have.SourceVolume != sourceVolume {
			return "", have, fmt.Errorf("snapshot %q of volume %s: %w (it is of %s)", name, sourceVolume, errConflict, have.SourceVolume)
		}
		return id, have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", have, err
	}
	var vol volumeMeta
	if !validID(sourceVolume) {
		return "", have, fmt.Errorf("volume %q to snapshot: %w", sourceVolume, errNotFound)
	}
	if err := readJSON(s.volumeMeta(sourceVolume), &vol); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("volume %s to snapshot: %w", sourceVolume, errNotFound)
		}
		return "", have, err
	}
	m := snapshotMeta{Name: name, SourceVolume: sourceVolume, SizeBytes: vol.CapacityBytes, CreatedUnixNano: time.Now().UnixNano()}
	tmp := s.snapshotTar(id) + ".tmp"
	err := tarTree(s.volumeDir(sourceVolume), tmp)
	if err == nil {
		err = os.Rename(tmp, s.snapshotTar(id))
	}
	if err == nil {
		err = writeJSON(s.snapshotMeta(id), m)
	}
	if err != nil {
		_ = os.Remove(tmp)
		_ = os.Remove(s.snapshotTar(id))
		return "", m, err
	}
	return id, m, nil
}

// deleteSnapshot removes the snapshot; one that is not there is deleted.
func (s *store) deleteSnapshot(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !validID(id) {
		return nil
	}
	if err := os.Remove(s.snapshotMeta(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Remove(s.snapshotTar(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func timeOf(unixNano int64) time.Time { return time.Unix(0, unixNano) }

// validID keeps IDs from the wire inside the store's directories.
func validID(id string) bool {
	return id != "" && id != "." && id != ".." && filepath.Base(id) == id
}

// tarTree, untar and copyTree use GNU tar as root: it keeps owners, modes,
// symlinks, hard links and special files exactly, which is what a snapshot
// of a workspace must do.
func tarTree(dir, file string) error {
	return runTar("-C", dir, "--numeric-owner", "-cpf", file, ".")
}

func untar(file, dir string) error {
	return runTar("-C", dir, "--numeric-owner", "--same-owner", "-xpf", file)
}

func copyTree(src, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".clone-*.tar")
	if err != nil {
		return err
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name())
	if err := tarTree(src, tmp.Name()); err != nil {
		return err
	}
	return untar(tmp.Name(), dst)
}

func runTar(args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("tar", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tar %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

func readJSON(file string, v any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// writeJSON writes through a temporary file and a rename, so a reader never
// sees half a file.
func writeJSON(file string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(file+".tmp", file)
}
