package pool

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// A pool is warm sandboxes waiting to be claimed, kept with nothing but
// built-in objects and namespace-scoped RBAC: its definition is a core/v1
// PodTemplate named agentkernel-pool-NAME (a namespaced object made to hold
// exactly a Pod template; the size and the sandbox Spec are annotations),
// and its members are sandboxes made by Create (member.go), owned by
// that PodTemplate. No controller runs: whoever claims a member creates its
// replacement, and every pool command reconciles the member count.

// Annotations of a pool's PodTemplate (and, for the spec, of its members).
const (
	AnnotationPoolSize = "agentkernel/pool-size"
	AnnotationPoolSpec = "agentkernel/pool-spec"
)

// MaxPoolNameLength keeps a member's generated name whole: the API server
// cuts a generateName prefix down to 58 characters, and a member must keep
// the prefix agentkernel-pool-NAME- to be recognised (Ours).
const MaxPoolNameLength = validation.DNS1123LabelMaxLength - 5 - len(sandbox.NamePrefix+"pool-") - 1

// MaxPoolSize bounds --size: a typo must not start ten thousand Pods.
const MaxPoolSize = 1000

// poolSpecVersion is the version of the AnnotationPoolSpec format.
const poolSpecVersion = 1

// PoolTemplateName is the name of the PodTemplate that defines pool.
func PoolTemplateName(pool string) string { return sandbox.NamePrefix + "pool-" + pool }

// ValidatePoolName checks a pool name.
func ValidatePoolName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("a pool name is required")
	case len(name) > MaxPoolNameLength:
		return fmt.Errorf("pool name %q is %d characters long; at most %d are allowed (members are named %q + name + a random suffix, a DNS label of at most 63)",
			name, len(name), MaxPoolNameLength, sandbox.NamePrefix+"pool-")
	case len(validation.IsDNS1123Label(name)) > 0:
		return fmt.Errorf("invalid pool name %q: use lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. %q)", name, "agents")
	case name == sandbox.PoolActive:
		return fmt.Errorf("pool name %q is reserved: cold sandboxes carry %s=%s", name, sandbox.LabelPool, sandbox.PoolActive)
	}
	return nil
}

// ValidatePoolSize checks --size; a new pool needs at least one member.
func ValidatePoolSize(size int, creating bool) error {
	switch {
	case size < 0:
		return field.Invalid("size", "`size` must not be negative (got %d)", size)
	case size == 0 && creating:
		return field.Error{Field: "size", Detail: "`size` must be at least 1: a pool of no members keeps nothing warm", Step: field.Step{Hint: field.HintNoPool}}
	case size > MaxPoolSize:
		return field.Invalid("size", "`size` %d is more than %d", size, MaxPoolSize)
	}
	return nil
}

// Pool is the definition of a pool.
type Pool struct {
	Name, Namespace string
	Size            int
	// Spec is what every member is, and what a claim gets: a sandbox
	// without a name. Its TTL and IdleTimeout start when a member is
	// claimed. It never has SecretEnvNames: secrets are the claim's.
	Spec sandbox.Spec

	// UID and ResourceVersion of the PodTemplate, once it exists.
	UID               types.UID
	ResourceVersion   string
	CreationTimestamp metav1.Time
}

// NewPool returns the definition of a pool of size members shaped by spec.
func NewPool(name string, spec sandbox.Spec, size int) (*Pool, error) {
	if err := ValidatePoolName(name); err != nil {
		return nil, err
	}
	if err := ValidatePoolSize(size, true); err != nil {
		return nil, err
	}
	if len(spec.SecretEnvNames) > 0 {
		return nil, field.Error{Field: "secretEnvNames", Detail: "`secretEnvNames` belongs to a claim, not to a pool: every warm member would hold the secret",
			Step: field.Step{Hint: field.HintSecretOnClaim, Pool: name, Value: spec.SecretEnvNames[0]}}
	}
	s := spec.Clone()
	s.Shape = nil
	check := s.Clone()
	check.Name = name // any valid sandbox name: the definition has none
	if err := check.Validate(); err != nil {
		return nil, err
	}
	s.Name = ""
	return &Pool{Name: name, Namespace: spec.Namespace, Size: size, Spec: s}, nil
}

// owner is the ownerReference every member carries to the pool.
func (p *Pool) owner() metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "PodTemplate", Name: PoolTemplateName(p.Name), UID: p.UID}
}

// definition is the pool's Spec as stored in AnnotationPoolSpec.
func (p *Pool) definition() string {
	return encodeDefinition(&p.Spec)
}

type storedDefinition struct {
	Version int          `json:"version"`
	Spec    sandbox.Spec `json:"spec"`
}

func encodeDefinition(s *sandbox.Spec) string {
	c := s.Clone()
	c.Name, c.Namespace, c.Shape = "", "", nil
	b, err := json.Marshal(storedDefinition{Version: poolSpecVersion, Spec: c})
	if err != nil {
		panic(fmt.Sprintf("a Spec always encodes: %v", err))
	}
	return string(b)
}

func decodeDefinition(text, namespace string) (*sandbox.Spec, error) {
	var d storedDefinition
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		return nil, fmt.Errorf("its %s annotation is not a pool definition: %v", AnnotationPoolSpec, err)
	}
	if d.Version != poolSpecVersion {
		return nil, fmt.Errorf("its pool definition has version %d; this %s reads version %d: upgrade it", d.Version, sandbox.Product, poolSpecVersion)
	}
	d.Spec.Namespace = namespace
	return &d.Spec, nil
}

// memberSpec is the Spec of a new member of the pool.
func (p *Pool) memberSpec() *sandbox.Spec {
	return memberSpec(&p.Spec, p.Namespace, p.Name, p.definition(), p.owner())
}

// PodTemplate is the object that stores the pool: its template is exactly
// the Pod every member is (as `kubectl get podtemplate -o yaml` shows an
// admin), its annotations the size and the Spec it is made from.
func (p *Pool) PodTemplate() *corev1.PodTemplate {
	member := p.memberSpec().Pod()
	delete(member.Labels, LabelFence) // each member's own
	for i := range member.Spec.Volumes {
		if c := member.Spec.Volumes[i].PersistentVolumeClaim; c != nil {
			c.ClaimName = sandbox.PoolMemberPrefix(p.Name) + "member" // each member's own, named as it
		}
	}
	delete(member.Annotations, AnnotationPoolSpec)
	return &corev1.PodTemplate{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodTemplate"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      PoolTemplateName(p.Name),
			Namespace: p.Namespace,
			Labels:    map[string]string{sandbox.LabelManagedBy: sandbox.ManagedBy, sandbox.LabelPool: p.Name},
			Annotations: map[string]string{
				AnnotationPoolSize: strconv.Itoa(p.Size),
				AnnotationPoolSpec: p.definition(),
			},
		},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: member.Labels, Annotations: member.Annotations},
			Spec:       member.Spec,
		},
	}
}

// PoolFromTemplate reads a pool's definition back from its PodTemplate.
func PoolFromTemplate(t *corev1.PodTemplate) (*Pool, error) {
	name := t.Labels[sandbox.LabelPool]
	if !sandbox.IsManaged(t) || name == "" || t.Name != PoolTemplateName(name) {
		return nil, &NotAPoolError{Name: name, Namespace: t.Namespace, TemplateName: t.Name}
	}
	size, err := strconv.Atoi(t.Annotations[AnnotationPoolSize])
	if err != nil || size < 0 {
		return nil, field.WithStep(fmt.Errorf("pool %q in namespace %q: its %s annotation %q is not a size", name, t.Namespace, AnnotationPoolSize, t.Annotations[AnnotationPoolSize]),
			field.Step{Hint: field.HintFixSize, Name: name, Namespace: t.Namespace})
	}
	spec, err := decodeDefinition(t.Annotations[AnnotationPoolSpec], t.Namespace)
	if err != nil {
		return nil, fmt.Errorf("pool %q in namespace %q: %v", name, t.Namespace, err)
	}
	return &Pool{Name: name, Namespace: t.Namespace, Size: size, Spec: *spec,
		UID: t.UID, ResourceVersion: t.ResourceVersion, CreationTimestamp: t.CreationTimestamp}, nil
}
