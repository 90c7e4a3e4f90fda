package rbac

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func TestPermissionsAreExplainedAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Permissions {
		s := p.String()
		if seen[s] {
			t.Errorf("%s is listed twice", s)
		}
		seen[s] = true
		if strings.TrimSpace(p.Why) == "" {
			t.Errorf("%s does not say what it is for", s)
		}
		if !slices.Contains([]string{"get", "list", "watch", "create", "patch", "update", "delete"}, p.Verb) {
			t.Errorf("%s: unexpected verb", s)
		}
		if got, ok := Find(s); !ok || got.String() != s {
			t.Errorf("Find(%q) = %v, %v", s, got, ok)
		}
	}
	if _, ok := Find("delete nodes"); ok {
		t.Error("Find made up a permission")
	}
}

func TestObjectsLeaveOutWhatTheyAreTold(t *testing.T) {
	full := Objects(Options{Namespace: "agents"})
	less := Objects(Options{Namespace: "agents", Without: []string{"patch pods", "list limitranges"}})
	rules := func(objs []any) map[string]bool {
		got := map[string]bool{}
		for _, o := range objs {
			for _, r := range o.(*rbacv1.Role).Rules {
				for _, v := range r.Verbs {
					got[v+" "+r.Resources[0]] = true
				}
			}
		}
		return got
	}
	f, l := rules([]any{full[0]}), rules([]any{less[0]})
	if !f["patch pods"] || l["patch pods"] || l["list limitranges"] || !l["delete pods"] {
		t.Errorf("full %v, less %v", f, l)
	}
	if len(Objects(Options{Namespace: "agents", Subject: &rbacv1.Subject{Kind: "User", Name: "a"}, DNS: true, Cluster: true})) != 6 {
		t.Error("roles and bindings: want 6 objects")
	}
}

func TestBindingNamesAreValidObjectNames(t *testing.T) {
	for _, s := range []rbacv1.Subject{{Kind: "User", Name: "https://issuer.example/#alice"}, {Kind: "ServiceAccount", Namespace: "ci", Name: "runner"}} {
		n := subjectName(s)
		if strings.ContainsAny(n, "/%") {
			t.Errorf("%q is not a valid object name", n)
		}
	}
}
