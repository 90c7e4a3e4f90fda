package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	k8stesting "k8s.io/client-go/testing"
)

// An API server older than 1.27 drops the scheduling gate, so a sandbox
// would run before its fence: Create refuses it before making anything.
// Newer servers, and servers whose version cannot be told, go on.
func TestCreateChecksServerVersion(t *testing.T) {
	cases := []struct {
		gitVersion string
		unreadable bool
		refused    bool
	}{
		{gitVersion: "v1.26.15", refused: true},
		{gitVersion: "v1.25.0-gke.100", refused: true},
		{gitVersion: "v1.27.0"},
		{gitVersion: "v1.30.2-eks-1552ad0"},
		{gitVersion: "v1.37.2"},
		{gitVersion: "v0.0.0-master+$Format:%H$"}, // a development build
		{unreadable: true},
	}
	for _, tc := range cases {
		t.Run(tc.gitVersion, func(t *testing.T) {
			cs := fakeCluster()
			cs.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: tc.gitVersion}
			if tc.unreadable {
				cs.PrependReactor("get", "version", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, errors.New("forbidden")
				})
			}
			s := NewSpec("demo", "ns")
			_, err := Create(context.Background(), cs, &s, CreateOptions{})
			var tooOld *ServerTooOldError
			if got := errors.As(err, &tooOld); got != tc.refused {
				t.Fatalf("refused = %v (%v), want %v", got, err, tc.refused)
			}
			if !tc.refused {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !strings.Contains(err.Error(), "sandboxes need 1.27 or later") || !strings.Contains(err.Error(), tc.gitVersion) {
				t.Errorf("error %q does not name the version needed and the server's", err)
			}
			for _, a := range cs.Actions() {
				if a.GetVerb() == "create" && a.GetResource().Resource != "selfsubjectreviews" {
					t.Errorf("a refused create wrote %s", a.GetResource().Resource)
				}
			}
		})
	}
}
