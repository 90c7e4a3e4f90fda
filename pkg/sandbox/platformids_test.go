package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/internal/fakecluster"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

func TestParseIDRanges(t *testing.T) {
	good := map[string]IDRanges{
		"1000680000/10000":                       {{1000680000, 1000689999}},
		"1000680000-1000689999":                  {{1000680000, 1000689999}},
		"1000680000/10000, 2000000000/1":         {{1000680000, 1000689999}, {2000000000, 2000000000}},
		"0/1":                                    {{0, 0}},
		"2147483647/1":                           {{2147483647, 2147483647}},
		"1000680000/10000,1000700000-1000700009": {{1000680000, 1000689999}, {1000700000, 1000700009}},
	}
	for in, want := range good {
		got, err := ParseIDRanges(in)
		if err != nil || len(got) != len(want) {
			t.Errorf("ParseIDRanges(%q) = %v, %v; want %v", in, got, err, want)
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("ParseIDRanges(%q)[%d] = %v, want %v", in, i, got[i], want[i])
			}
		}
	}
	for _, in := range []string{"", "1000", "1000/0", "1000/-5", "-5/10", "x/10", "10-5", "1/2/3", "2147483647/2", "1000680000/10000,", "9223372036854775807/2"} {
		if got, err := ParseIDRanges(in); err == nil {
			t.Errorf("ParseIDRanges(%q) = %v, want an error", in, got)
		}
	}
}

// The annotations are written by whoever may edit the namespace: the
// parser never panics and never returns a range that is upside down or
// beyond 32 bits.
func FuzzParseIDRanges(f *testing.F) {
	for _, s := range []string{"1000680000/10000", "1-2,3/4", "0/1", "2147483647/1", "/", "-", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseIDRanges(s)
		if err != nil {
			return
		}
		if len(rs) == 0 {
			t.Fatalf("%q: no ranges and no error", s)
		}
		for _, r := range rs {
			if r.Min < 0 || r.Max < r.Min || r.Max > 1<<31-1 {
				t.Fatalf("%q: range %v", s, r)
			}
		}
	})
}

func openshiftNamespace(name, uids, gids string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{
		AnnotationSCCUIDRange: uids,
		AnnotationSCCMCS:      "s0:c26,c15",
	}}}
	if gids != "" {
		ns.Annotations[AnnotationSCCSupplementalGroups] = gids
	}
	return ns
}

func TestFromNamespace(t *testing.T) {
	type want struct {
		uid, group int64
		err        string // a field error on uid, saying this
	}
	cases := map[string]struct {
		ns     *corev1.Namespace
		chosen int64 // 0: no uid chosen
		want   want
	}{
		"no annotations: the default":        {&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}, 0, want{DefaultUID, DefaultUID, ""}},
		"no annotations: the chosen UID":     {&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}, 4242, want{4242, 4242, ""}},
		"OpenShift: the first of the range":  {openshiftNamespace("ns", "1000680000/10000", "1000680000/10000"), 0, want{1000680000, 1000680000, ""}},
		"OpenShift: a chosen UID inside":     {openshiftNamespace("ns", "1000680000/10000", "1000680000/10000"), 1000680042, want{1000680042, 1000680042, ""}},
		"OpenShift: no supplemental groups":  {openshiftNamespace("ns", "1000680000/10000", ""), 0, want{1000680000, 1000680000, ""}},
		"groups from another range":          {openshiftNamespace("ns", "1000680000/10000", "5000/100"), 0, want{1000680000, 5000, ""}},
		"OpenShift: the old default refused": {openshiftNamespace("ns", "1000680000/10000", "1000680000/10000"), 1000, want{err: "uid 1000 is outside the UIDs namespace \"ns\" admits (1000680000-1000689999"}},
		"one past the end refused":           {openshiftNamespace("ns", "1000680000/10000", ""), 1000690000, want{err: "leave uid out to run as 1000680000"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := NewSpec("demo", "ns")
			if c.chosen != 0 {
				s.UID, s.UIDChosen = c.chosen, true
			}
			err := s.FromNamespace(context.Background(), fakecluster.New(c.ns))
			if c.want.err != "" {
				var fe field.Error
				if !errors.As(err, &fe) || fe.Field != "uid" || !strings.Contains(err.Error(), c.want.err) {
					t.Fatalf("FromNamespace = %v, want a uid error saying %q", err, c.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pod := s.Pod()
			sc := pod.Spec.SecurityContext
			if *sc.RunAsUser != c.want.uid || *sc.RunAsGroup != c.want.group || *sc.FSGroup != c.want.group || !*sc.RunAsNonRoot {
				t.Errorf("runAsUser %d, runAsGroup %d, fsGroup %d; want %d, %d, %d", *sc.RunAsUser, *sc.RunAsGroup, *sc.FSGroup, c.want.uid, c.want.group, c.want.group)
			}
			if v := fakecluster.RestrictedViolations(t, pod); v != "" {
				t.Errorf("violates restricted: %s", v)
			}
		})
	}
}

func TestFromNamespaceMalformedAnnotation(t *testing.T) {
	s := NewSpec("demo", "ns")
	err := s.FromNamespace(context.Background(), fakecluster.New(openshiftNamespace("ns", "1000680000", "")))
	if err == nil || !strings.Contains(err.Error(), AnnotationSCCUIDRange) {
		t.Fatalf("FromNamespace = %v, want an error naming the annotation", err)
	}
}

// A user who may not read the namespace keeps the UID; a refusal by
// the platform's range then says why no UID was picked from it.
func TestNamespaceUnreadable(t *testing.T) {
	cs := fakecluster.New(openshiftNamespace("ns", "1000680000/10000", ""))
	cs.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "ns", errors.New("no"))
	})
	refuse := errors.New(`pods "agentkernel-demo" is forbidden: spec.securityContext.runAsUser: Invalid value: 1000: must be in the ranges: [1000680000, 1000689999]`)
	cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "agentkernel-demo", refuse)
	})
	s := NewSpec("demo", "ns")
	_, err := Create(context.Background(), cs, &s, CreateOptions{})
	var fe field.Error
	if !errors.As(err, &fe) || fe.Field != "uid" {
		t.Fatalf("Create = %v, want a uid error", err)
	}
	for _, want := range []string{"must be in the ranges: [1000680000, 1000689999]", `namespace "ns" could not be read to pick one (forbidden)`, "give a uid in the range"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if s.UID != DefaultUID {
		t.Errorf("UID = %d, want the default kept", s.UID)
	}
}

// A UID outside the range is refused before anything is created.
func TestCreateRefusesAUIDOutsideTheRangeFirst(t *testing.T) {
	cs := fakecluster.New(openshiftNamespace("ns", "1000680000/10000", ""))
	s := NewSpec("demo", "ns")
	s.UID, s.UIDChosen = 1000, true
	if _, err := Create(context.Background(), cs, &s, CreateOptions{}); err == nil || !strings.Contains(err.Error(), "is outside the UIDs") {
		t.Fatalf("Create = %v, want the range refused", err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource != "selfsubjectreviews" { // who am I: asked, not made
			t.Errorf("something was created: %v", a)
		}
	}
}

func TestUserEnv(t *testing.T) {
	s := NewSpec("demo", "ns")
	s.Env = []corev1.EnvVar{{Name: "USER", Value: "me"}}
	env := map[string]string{}
	for _, e := range s.Pod().Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["HOME"] != HomeDir || env["LOGNAME"] != UserName || env["USER"] != "me" {
		t.Errorf("env %v: want HOME %s, LOGNAME %s and the user's USER", env, HomeDir, UserName)
	}
}
