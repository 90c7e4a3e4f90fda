// Package sandbox is the domain of kubectl agentkernel: the shapes of a
// sandbox's Pod, NetworkPolicy and Secret, their lifecycle against the API
// server, and copying files in and out. It knows nothing of cobra or of
// terminals; pkg/cmd turns flags into a Spec and calls in here.
package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels and names are agentkernel's own, so selectors its users already
// have (kubectl get pods -l agentkernel/managed-by=agentkernel) keep working.
const (
	LabelSandbox   = "agentkernel/sandbox"
	LabelManagedBy = "agentkernel/managed-by"
	LabelPool      = "agentkernel/pool"
	ManagedBy      = "agentkernel"
	// Product is the plugin's name, as messages say who made something.
	// It names no command: those are the edges' (pkg/cmd, pkg/mcp).
	Product    = "kubectl agentkernel"
	PoolActive = "active"

	AnnotationProfile = "agentkernel/profile"
	AnnotationNetwork = "agentkernel/network"
	AnnotationTTL     = "agentkernel/ttl"
	// AnnotationIdleTimeout records --idle-timeout.
	AnnotationIdleTimeout = "agentkernel/idle-timeout"
	// AnnotationEnvFile names the file in the sandbox that holds the
	// environment a pool claim brought; every exec sources it (envfile.go).
	AnnotationEnvFile = "agentkernel/env-file"

	// NamePrefix is put before the sandbox name to make the Pod's name.
	NamePrefix = "agentkernel-"
	// ContainerName is the one container every sandbox Pod has.
	ContainerName = "sandbox"

	// MaxNameLength keeps NamePrefix+name a valid DNS-1123 label: the Pod's
	// hostname and the agentkernel/sandbox label value are both limited to 63.
	MaxNameLength = validation.DNS1123LabelMaxLength - len(NamePrefix)
)

// ManagedSelector selects everything this plugin created.
var ManagedSelector = LabelManagedBy + "=" + ManagedBy

// SandboxSelector selects the plugin's sandbox Pods: cold ones and those
// claimed from a pool, but not warm pool members nobody has claimed.
var SandboxSelector = ManagedSelector + "," + LabelSandbox

// PoolMemberPrefix is the generateName of a pool's members. A claimed member
// keeps this name: Pods cannot be renamed.
func PoolMemberPrefix(pool string) string { return NamePrefix + "pool-" + pool + "-" }

// PodName is the name of the Pod behind sandbox name.
func PodName(name string) string { return NamePrefix + name }

// SecretName is the name of the Secret holding a sandbox's secret environment.
func SecretName(name string) string { return NamePrefix + name + "-env" }

// ValidateName checks a sandbox name. The message says what a good name looks like.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("a sandbox name is required")
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("sandbox name %q is %d characters long; at most %d are allowed (the Pod is named %q + name, a DNS label of at most 63)",
			name, len(name), MaxNameLength, NamePrefix)
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("invalid sandbox name %q: use lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. %q)",
			name, "my-agent-1")
	}
	return nil
}

// RandomHex is n random bytes (crypto/rand) in hex: the one source of the
// random parts of names, labels and tokens, so that none of them is
// guessable.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// nameAlphabet has no vowels, so a generated name spells no word.
const nameAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// GeneratedName is a sandbox name made from prefix, unlikely to be taken:
// the prefix, "-" and 5 random letters or digits ("claude-x7k2p").
func GeneratedName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = nameAlphabet[int(b[i])%len(nameAlphabet)]
	}
	return prefix + "-" + string(b)
}
