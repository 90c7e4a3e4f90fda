package agents

import (
	"reflect"
	"strings"
	"testing"
)

// A preset's persist, storageClass and retain: what each value means, and
// each bad one reported with the file, the line and the field, as the
// flags --persist, --storage-class and --retain refuse it.
func TestPresetPersistFields(t *testing.T) {
	for name, c := range map[string]struct {
		yaml                   string
		persist, class, retain string
	}{
		"a size":            {"persist: 20Gi\n    storageClass: fast-ssd\n    retain: 168h", "20Gi", "fast-ssd", "168h"},
		"true: the default": {"persist: true", "10Gi", "", ""},
		"false":             {"persist: false", "", "", ""},
		"empty":             {"persist:", "", "", ""},
		"retain 0":          {"persist: 1Gi\n    retain: 0s", "1Gi", "", "0s"},
	} {
		t.Run(name, func(t *testing.T) {
			presets, err := Parse("f.yaml", []byte("agents:\n  a:\n    image: x\n    "+c.yaml+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			set, err := Merge(nil, presets)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := set.Get("a")
			if p.Persist != c.persist || p.StorageClass != c.class || p.Retain != c.retain {
				t.Errorf("persist %q, storageClass %q, retain %q; want %q, %q, %q", p.Persist, p.StorageClass, p.Retain, c.persist, c.class, c.retain)
			}
		})
	}

	_, err := Parse("f.yaml", []byte("agents:\n  a:\n    image: x\n    persist: lots\n    storageClass: Fast_SSD\n    retain: soon\n"+
		"  b:\n    image: x\n    persist: 0\n    retain: 30s\n  c:\n    image: x\n    persist: -1Gi\n    storageClass: [a]\n"))
	want := []string{
		`f.yaml:4: agents.a.persist: "lots" is not a workspace size (examples: 10Gi, 500Mi; true for the default, 10Gi)`,
		`f.yaml:5: agents.a.storageClass: "Fast_SSD" is not a StorageClass name (a DNS subdomain: lower-case letters, digits, '-' and '.')`,
		`f.yaml:6: agents.a.retain: "soon" is not a duration (examples: 168h, 30m; 0 keeps a suspended workspace until it is deleted)`,
		`f.yaml:9: agents.b.persist: "0" is not a workspace size (examples: 10Gi, 500Mi; true for the default, 10Gi)`,
		`f.yaml:10: agents.b.retain: "30s" must be at least 1m, or 0 to keep a suspended workspace until it is deleted`,
		`f.yaml:13: agents.c.persist: "-1Gi" is not a workspace size (examples: 10Gi, 500Mi; true for the default, 10Gi)`,
		`f.yaml:14: agents.c.storageClass: want a single value, not a list`,
	}
	if err == nil || !reflect.DeepEqual(strings.Split(err.Error(), "\n"), want) {
		t.Errorf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// A user's file laid over a preset that persists: it can resize, move to
// another class, or make the preset disposable again (persist: false),
// which its storageClass and retain must then follow — checked on the
// merged preset, at the field set last.
func TestMergePersist(t *testing.T) {
	base, err := Parse("embedded", []byte("agents:\n  a:\n    image: x\n    persist: 10Gi\n    storageClass: standard\n    retain: 24h\n"))
	if err != nil {
		t.Fatal(err)
	}
	over := func(yaml string) (*Preset, error) {
		t.Helper()
		o, err := Parse("user.yaml", []byte("agents:\n  a:\n"+yaml))
		if err != nil {
			t.Fatal(err)
		}
		set, err := Merge(base, o)
		if err != nil {
			return nil, err
		}
		return set.Get("a")
	}
	p, err := over("    persist: 50Gi\n")
	if err != nil || p.Persist != "50Gi" || p.StorageClass != "standard" || p.Retain != "24h" {
		t.Errorf("resized: %+v %v", p, err)
	}
	p, err = over("    persist: false\n    storageClass: null\n    retain: null\n")
	if err != nil || p.Persist != "" || p.StorageClass != "" || p.Retain != "" {
		t.Errorf("made disposable: %+v %v", p, err)
	}
	_, err = over("    persist: false\n")
	if err == nil || !strings.Contains(err.Error(), "embedded:5: agents.a.storageClass: storageClass needs persist (e.g. persist: 10Gi): a disposable sandbox has no workspace to put in a class") ||
		!strings.Contains(err.Error(), "embedded:6: agents.a.retain: retain needs persist") {
		t.Errorf("disposable, but a class and a retention left: %v (want both named where they were set)", err)
	}
	if _, err := Merge(nil, mustParse(t, "agents:\n  b:\n    image: x\n    storageClass: fast\n")); err == nil ||
		err.Error() != "f.yaml:4: agents.b.storageClass: storageClass needs persist (e.g. persist: 10Gi): a disposable sandbox has no workspace to put in a class" {
		t.Errorf("a class without persist: %v", err)
	}
}

func mustParse(t *testing.T, yaml string) []*Preset {
	t.Helper()
	p, err := Parse("f.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
