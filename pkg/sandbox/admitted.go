package sandbox

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// What a cluster's admission did to a sandbox's Pod. Mutating webhooks and
// MutatingAdmissionPolicies may change a Pod between our request and what
// the API server stores: add a sidecar, raise a limit, drop the read-only
// root, pin an image to a digest. We cannot know them in advance, so we
// compare what we asked for with what was stored — on what matters to the
// sandbox's hardening, not as a raw diff, because the API server itself
// fills in defaults (imagePullPolicy, terminationMessagePath, the
// DefaultTolerationSeconds tolerations, priority, dnsPolicy…) that change
// nothing about it.

// AdmissionChange is one difference between the Pod asked for and the Pod
// stored.
type AdmissionChange struct {
	// Field is where in the Pod, as a path (spec.containers[sandbox].image).
	Field string
	// Asked and Stored say what each holds, in words; never a value that
	// could be a secret (environment variables are named, not shown).
	Asked, Stored string
	// Weakens: with this change the sandbox is no longer hardened as asked.
	Weakens bool
}

func (c AdmissionChange) String() string {
	return fmt.Sprintf("%s: asked %s, stored %s", c.Field, c.Asked, c.Stored)
}

// Weakening returns the changes that weaken the sandbox's hardening.
func Weakening(changes []AdmissionChange) []AdmissionChange {
	var out []AdmissionChange
	for _, c := range changes {
		if c.Weakens {
			out = append(out, c)
		}
	}
	return out
}

// AdmissionChanges compares the Pod asked for with the Pod the API server
// stored (or would store, in a dry run). It only reads both.
func AdmissionChanges(asked, stored *corev1.Pod) []AdmissionChange {
	d := &podDiff{}
	d.meta(asked, stored)
	d.pod(&asked.Spec, &stored.Spec)
	d.volumes(asked.Spec.Volumes, stored.Spec.Volumes)
	d.containers("initContainers", &asked.Spec, asked.Spec.InitContainers, &stored.Spec, stored.Spec.InitContainers)
	d.containers("containers", &asked.Spec, asked.Spec.Containers, &stored.Spec, stored.Spec.Containers)
	if n := len(stored.Spec.EphemeralContainers); n > len(asked.Spec.EphemeralContainers) {
		d.weakens("spec.ephemeralContainers", "none", fmt.Sprintf("%d", n))
	}
	return d.changes
}

type podDiff struct{ changes []AdmissionChange }

func (d *podDiff) add(field, asked, stored string, weakens bool) {
	d.changes = append(d.changes, AdmissionChange{Field: field, Asked: asked, Stored: stored, Weakens: weakens})
}
func (d *podDiff) weakens(field, asked, stored string) { d.add(field, asked, stored, true) }
func (d *podDiff) notes(field, asked, stored string)   { d.add(field, asked, stored, false) }

// meta: the fence (NetworkPolicy) selects the Pod by our labels, so a
// label of ours changed or removed leaves the Pod outside it. Labels and
// annotations added by others change nothing of ours.
func (d *podDiff) meta(asked, stored *corev1.Pod) {
	for _, k := range sortedKeys(asked.Labels) {
		v, ok := stored.Labels[k]
		if ok && v == asked.Labels[k] {
			continue
		}
		ours := strings.HasPrefix(k, "agentkernel/") || strings.HasPrefix(k, "app.kubernetes.io/")
		d.add("metadata.labels["+k+"]", quote(asked.Labels[k]), quoteIf(v, ok), ours)
	}
	for k, v := range stored.Annotations {
		// A pod-level AppArmor annotation (before the securityContext
		// field) that unconfines a container.
		if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) &&
			v == corev1.DeprecatedAppArmorBetaProfileNameUnconfined && asked.Annotations[k] != v {
			d.weakens("metadata.annotations["+k+"]", quoteIf(asked.Annotations[k], asked.Annotations[k] != ""), quote(v))
		}
	}
}

// pod compares the Pod-wide settings.
func (d *podDiff) pod(a, s *corev1.PodSpec) {
	for _, g := range a.SchedulingGates {
		if !slices.ContainsFunc(s.SchedulingGates, func(h corev1.PodSchedulingGate) bool { return h.Name == g.Name }) {
			// The API server drops gates it does not know (before 1.27) or
			// a webhook removed it: the Pod may run before its fence exists.
			d.weakens("spec.schedulingGates", quote(g.Name), "without it")
		}
	}
	for _, h := range []struct {
		field string
		a, s  bool
	}{
		{"spec.hostNetwork", a.HostNetwork, s.HostNetwork},
		{"spec.hostPID", a.HostPID, s.HostPID},
		{"spec.hostIPC", a.HostIPC, s.HostIPC},
		{"spec.shareProcessNamespace", ptr.Deref(a.ShareProcessNamespace, false), ptr.Deref(s.ShareProcessNamespace, false)},
		{"spec.automountServiceAccountToken", ptr.Deref(a.AutomountServiceAccountToken, true), ptr.Deref(s.AutomountServiceAccountToken, true)},
		{"spec.hostUsers", ptr.Deref(a.HostUsers, true), ptr.Deref(s.HostUsers, true)},
		{"spec.enableServiceLinks", ptr.Deref(a.EnableServiceLinks, true), ptr.Deref(s.EnableServiceLinks, true)},
	} {
		if h.a != h.s {
			// Each is more open when true, except enableServiceLinks,
			// which only adds environment variables naming Services.
			d.add(h.field, fmt.Sprint(h.a), fmt.Sprint(h.s), h.s && h.field != "spec.enableServiceLinks")
		}
	}
	if a.ServiceAccountName != s.ServiceAccountName && (a.ServiceAccountName != "" || s.ServiceAccountName != "default") {
		d.notes("spec.serviceAccountName", quote(a.ServiceAccountName), quote(s.ServiceAccountName))
	}
	if ar, sr := ptr.Deref(a.RuntimeClassName, ""), ptr.Deref(s.RuntimeClassName, ""); ar != sr {
		// Another runtime class is another boundary; one chosen for us
		// where we asked none is the platform's (e.g. GKE Sandbox).
		d.add("spec.runtimeClassName", quoteIf(ar, ar != ""), quoteIf(sr, sr != ""), ar != "")
	}
	if ad, sd := a.ActiveDeadlineSeconds, s.ActiveDeadlineSeconds; ad != nil && (sd == nil || *sd > *ad) {
		d.weakens("spec.activeDeadlineSeconds", fmt.Sprint(*ad), showInt(sd))
	} else if ad == nil && sd != nil || ad != nil && *sd < *ad {
		d.notes("spec.activeDeadlineSeconds", showInt(ad), showInt(sd))
	}
	if added := addedTolerations(a.Tolerations, s.Tolerations); len(added) > 0 {
		d.notes("spec.tolerations", "none more", strings.Join(added, ", "))
	}
	if !maps.Equal(a.NodeSelector, s.NodeSelector) {
		d.notes("spec.nodeSelector", showMap(a.NodeSelector), showMap(s.NodeSelector))
	}
	if s.NodeName != a.NodeName {
		d.notes("spec.nodeName", quote(a.NodeName), quote(s.NodeName))
	}
	if len(s.HostAliases) > len(a.HostAliases) {
		d.notes("spec.hostAliases", fmt.Sprint(len(a.HostAliases)), fmt.Sprint(len(s.HostAliases)))
	}
	if s.DNSConfig != nil && a.DNSConfig == nil {
		d.notes("spec.dnsConfig", "none", "set")
	}
	ap, sp := a.SecurityContext, s.SecurityContext
	if ap == nil {
		ap = &corev1.PodSecurityContext{}
	}
	if sp == nil {
		sp = &corev1.PodSecurityContext{}
	}
	if ag, sg := showInt(ap.FSGroup), showInt(sp.FSGroup); ag != sg {
		d.notes("spec.securityContext.fsGroup", ag, sg)
	}
	if added := addedInts(ap.SupplementalGroups, sp.SupplementalGroups); len(added) > 0 {
		d.add("spec.securityContext.supplementalGroups", "none more", strings.Join(added, ", "), slices.Contains(added, "0"))
	}
	if len(sp.Sysctls) > len(ap.Sysctls) {
		d.notes("spec.securityContext.sysctls", fmt.Sprint(len(ap.Sysctls)), fmt.Sprint(len(sp.Sysctls)))
	}
}

// volumes: a volume added may bring the host, a credential or a shared
// disk into the sandbox; only the harmless kinds (scratch space, the Pod's
// own metadata, a ConfigMap) are not weakenings.
func (d *podDiff) volumes(asked, stored []corev1.Volume) {
	byName := map[string]*corev1.Volume{}
	seen := map[string]bool{}
	for i := range asked {
		byName[asked[i].Name] = &asked[i]
	}
	for i := range stored {
		s := &stored[i]
		path := "spec.volumes[" + s.Name + "]"
		a, ok := byName[s.Name]
		if !ok {
			kind := volumeKind(s)
			d.add(path, "none", kind, !harmlessVolume(s))
			continue
		}
		seen[s.Name] = true
		if i < len(asked) && asked[i].Name == s.Name {
			a = &asked[i] // names repeat only in a Pod the API server refuses; compare in place
		}
		if ak, sk := volumeKind(a), volumeKind(s); ak != sk {
			d.weakens(path, ak, sk)
			continue
		}
		if a.EmptyDir != nil && s.EmptyDir != nil {
			if al, sl := a.EmptyDir.SizeLimit, s.EmptyDir.SizeLimit; al != nil && (sl == nil || sl.Cmp(*al) > 0) {
				d.weakens(path+".emptyDir.sizeLimit", al.String(), showQuantity(sl))
			}
		}
	}
	for _, name := range sortedKeys(byName) {
		if !seen[name] {
			d.notes("spec.volumes["+name+"]", volumeKind(byName[name]), "removed")
		}
	}
}

// volumeKind names a volume's source (emptyDir, hostPath, projected: …).
func volumeKind(v *corev1.Volume) string {
	src := v.VolumeSource
	switch {
	case src.EmptyDir != nil:
		return "emptyDir"
	case src.HostPath != nil:
		return "hostPath " + quote(src.HostPath.Path)
	case src.Secret != nil:
		return "secret " + quote(src.Secret.SecretName)
	case src.ConfigMap != nil:
		return "configMap " + quote(src.ConfigMap.Name)
	case src.DownwardAPI != nil:
		return "downwardAPI"
	case src.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim " + quote(src.PersistentVolumeClaim.ClaimName)
	case src.Projected != nil:
		var parts []string
		for _, p := range src.Projected.Sources {
			switch {
			case p.ServiceAccountToken != nil:
				parts = append(parts, "serviceAccountToken")
			case p.Secret != nil:
				parts = append(parts, "secret")
			case p.ConfigMap != nil:
				parts = append(parts, "configMap")
			case p.DownwardAPI != nil:
				parts = append(parts, "downwardAPI")
			default:
				parts = append(parts, "other")
			}
		}
		return "projected (" + strings.Join(parts, ", ") + ")"
	case src.Ephemeral != nil:
		return "ephemeral"
	case src.CSI != nil:
		return "csi " + quote(src.CSI.Driver)
	case src.Image != nil:
		return "image " + quote(src.Image.Reference)
	}
	return "another kind of volume"
}

func harmlessVolume(v *corev1.Volume) bool {
	src := v.VolumeSource
	switch {
	case src.EmptyDir != nil, src.DownwardAPI != nil, src.ConfigMap != nil:
		return true
	case src.Projected != nil:
		for _, p := range src.Projected.Sources {
			if p.ServiceAccountToken != nil || p.Secret != nil || p.ClusterTrustBundle == nil && p.ConfigMap == nil && p.DownwardAPI == nil {
				return false
			}
		}
		return true
	}
	return false
}

// containers compares one list of containers, by name.
func (d *podDiff) containers(list string, ap *corev1.PodSpec, asked []corev1.Container, sp *corev1.PodSpec, stored []corev1.Container) {
	byName := map[string]*corev1.Container{}
	seen := map[string]bool{}
	for i := range asked {
		byName[asked[i].Name] = &asked[i]
	}
	for i := range stored {
		s := &stored[i]
		a, ok := byName[s.Name]
		if !ok {
			// A sidecar runs code nobody asked for inside the sandbox's
			// Pod: in its network namespace, behind its fence, beside it.
			d.weakens("spec."+list+"["+s.Name+"]", "none", "a container running "+quote(s.Image))
			continue
		}
		seen[s.Name] = true
		if i < len(asked) && asked[i].Name == s.Name {
			a = &asked[i] // names repeat only in a Pod the API server refuses; compare in place
		}
		d.container("spec."+list+"["+s.Name+"]", ap, a, sp, s)
	}
	for _, name := range sortedKeys(byName) {
		if !seen[name] {
			d.weakens("spec."+list+"["+name+"]", "a container", "removed")
		}
	}
}

func (d *podDiff) container(path string, ap *corev1.PodSpec, a *corev1.Container, sp *corev1.PodSpec, s *corev1.Container) {
	if a.Image != s.Image && !samePinned(a.Image, s.Image) {
		d.weakens(path+".image", quote(a.Image), quote(s.Image))
	} else if a.Image != s.Image {
		d.notes(path+".image", quote(a.Image), quote(s.Image))
	}
	if !slices.Equal(a.Command, s.Command) || !slices.Equal(a.Args, s.Args) {
		d.weakens(path+".command", "ours", "another")
	}
	if a.StartupProbe != nil && !reflect.DeepEqual(a.StartupProbe, s.StartupProbe) {
		// A warm install's: without it, Ready no longer means installed.
		d.weakens(path+".startupProbe", "ours", showProbe(s.StartupProbe))
	}
	d.security(path+".securityContext", ap, a, sp, s)
	d.resources(path+".resources", a.Resources, s.Resources)
	d.env(path, a, s)
	for _, m := range s.VolumeMounts {
		if slices.ContainsFunc(a.VolumeMounts, func(x corev1.VolumeMount) bool {
			return x.MountPath == m.MountPath && x.Name == m.Name && (m.ReadOnly || !x.ReadOnly)
		}) {
			continue
		}
		i := slices.IndexFunc(a.VolumeMounts, func(x corev1.VolumeMount) bool { return x.MountPath == m.MountPath })
		switch {
		case i < 0:
			d.notes(path+".volumeMounts["+m.MountPath+"]", "none", "volume "+quote(m.Name))
		case a.VolumeMounts[i].Name != m.Name:
			d.weakens(path+".volumeMounts["+m.MountPath+"]", "volume "+quote(a.VolumeMounts[i].Name), "volume "+quote(m.Name))
		default:
			d.weakens(path+".volumeMounts["+m.MountPath+"].readOnly", "true", "false")
		}
	}
	for _, p := range s.Ports {
		if p.HostPort != 0 && !slices.ContainsFunc(a.Ports, func(q corev1.ContainerPort) bool { return q.HostPort == p.HostPort }) {
			d.weakens(path+".ports.hostPort", "none", fmt.Sprint(p.HostPort))
		}
	}
	if s.Lifecycle != nil && a.Lifecycle == nil {
		d.notes(path+".lifecycle", "none", "hooks")
	}
}

// security compares the effective security settings of a container: its
// own, or the Pod's where it sets none (as the kubelet applies them).
func (d *podDiff) security(path string, ap *corev1.PodSpec, a *corev1.Container, sp *corev1.PodSpec, s *corev1.Container) {
	ae, se := effective(ap, a), effective(sp, s)
	flag := func(field string, av, sv bool, weakerWhen bool) {
		if av != sv {
			d.add(path+"."+field, fmt.Sprint(av), fmt.Sprint(sv), sv == weakerWhen)
		}
	}
	flag("privileged", ae.privileged, se.privileged, true)
	flag("allowPrivilegeEscalation", ae.escalation, se.escalation, true)
	flag("readOnlyRootFilesystem", ae.readOnlyRoot, se.readOnlyRoot, false)
	flag("runAsNonRoot", ae.nonRoot, se.nonRoot, false)
	if ae.user != se.user {
		// Another UID (a platform's range) is no weakening; root is.
		d.add(path+".runAsUser", ae.user, se.user, se.user == "0")
	}
	if ae.group != se.group {
		d.add(path+".runAsGroup", ae.group, se.group, se.group == "0")
	}
	if ae.seccomp != se.seccomp {
		// A Localhost profile may be stricter or looser: we cannot tell.
		d.add(path+".seccompProfile", ae.seccomp, se.seccomp, se.seccomp != string(corev1.SeccompProfileTypeRuntimeDefault))
	}
	if ae.appArmor != se.appArmor {
		d.add(path+".appArmorProfile", ae.appArmor, se.appArmor, se.appArmor == string(corev1.AppArmorProfileTypeUnconfined))
	}
	if ae.seLinuxType != se.seLinuxType {
		// A level (OpenShift's s0:cX,cY) changes nothing; a type does.
		d.add(path+".seLinuxOptions.type", quote(ae.seLinuxType), quote(se.seLinuxType), se.seLinuxType != "" && se.seLinuxType != "container_t")
	}
	if ae.procMount != se.procMount {
		d.add(path+".procMount", ae.procMount, se.procMount, se.procMount == string(corev1.UnmaskedProcMount))
	}
	if ae.dropsAll && !se.dropsAll {
		d.weakens(path+".capabilities.drop", "ALL", "not ALL")
	}
	if added := addedStrings(ae.adds, se.adds); len(added) > 0 {
		d.weakens(path+".capabilities.add", showList(ae.adds), strings.Join(added, ", "))
	}
}

// security is a container's effective hardening, in comparable values.
type security struct {
	privileged, escalation, readOnlyRoot, nonRoot, dropsAll bool
	user, group, seccomp, appArmor, seLinuxType, procMount  string
	adds                                                    []string
}

func effective(p *corev1.PodSpec, c *corev1.Container) security {
	ps := p.SecurityContext
	if ps == nil {
		ps = &corev1.PodSecurityContext{}
	}
	cs := c.SecurityContext
	if cs == nil {
		cs = &corev1.SecurityContext{}
	}
	e := security{
		privileged:   ptr.Deref(cs.Privileged, false),
		readOnlyRoot: ptr.Deref(cs.ReadOnlyRootFilesystem, false),
		nonRoot:      ptr.Deref(either(cs.RunAsNonRoot, ps.RunAsNonRoot), false),
		user:         showInt(either(cs.RunAsUser, ps.RunAsUser)),
		group:        showInt(either(cs.RunAsGroup, ps.RunAsGroup)),
		procMount:    string(ptr.Deref(cs.ProcMount, corev1.DefaultProcMount)),
		seccomp:      "none",
		appArmor:     "none",
	}
	// Unset, a process may gain privileges (the kernel's no_new_privs is
	// off); privileged implies it too.
	e.escalation = ptr.Deref(cs.AllowPrivilegeEscalation, true) || e.privileged
	if sc := cs.SeccompProfile; sc != nil {
		e.seccomp = seccompName(sc)
	} else if ps.SeccompProfile != nil {
		e.seccomp = seccompName(ps.SeccompProfile)
	}
	if ap := cs.AppArmorProfile; ap != nil {
		e.appArmor = string(ap.Type)
	} else if ps.AppArmorProfile != nil {
		e.appArmor = string(ps.AppArmorProfile.Type)
	}
	if se := either(cs.SELinuxOptions, ps.SELinuxOptions); se != nil {
		e.seLinuxType = se.Type
	}
	if caps := cs.Capabilities; caps != nil {
		for _, c := range caps.Drop {
			if strings.EqualFold(string(c), "ALL") {
				e.dropsAll = true
			}
		}
		for _, c := range caps.Add {
			e.adds = append(e.adds, strings.ToUpper(strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")))
		}
		sort.Strings(e.adds)
	}
	return e
}

func seccompName(sc *corev1.SeccompProfile) string {
	if sc.Type == corev1.SeccompProfileTypeLocalhost {
		return "Localhost " + quote(ptr.Deref(sc.LocalhostProfile, ""))
	}
	return string(sc.Type)
}

// resources: a limit bounds what a hostile sandbox can take from its
// node, so one raised or removed weakens it; requests only place it.
func (d *podDiff) resources(path string, a, s corev1.ResourceRequirements) {
	for _, name := range sortedKeys(a.Limits) {
		al := a.Limits[name]
		sl, ok := s.Limits[name]
		switch {
		case !ok:
			d.weakens(path+".limits."+string(name), al.String(), "none")
		case sl.Cmp(al) > 0:
			d.weakens(path+".limits."+string(name), al.String(), sl.String())
		case sl.Cmp(al) < 0:
			d.notes(path+".limits."+string(name), al.String(), sl.String())
		}
	}
	for _, name := range sortedKeys(s.Limits) {
		if _, ok := a.Limits[name]; !ok {
			d.notes(path+".limits."+string(name), "none", ptr.To(s.Limits[name]).String())
		}
	}
	for _, name := range sortedKeys(s.Requests) {
		ar, ok := a.Requests[name]
		sr := s.Requests[name]
		if !ok || ar.Cmp(sr) != 0 {
			d.notes(path+".requests."+string(name), showQuantity(ptrIf(ar, ok)), sr.String())
		}
	}
}

// env: a variable taken from a Secret puts a credential in reach of the
// sandbox. Values are never shown: a webhook may inject secrets.
func (d *podDiff) env(path string, a, s *corev1.Container) {
	asked := map[string]corev1.EnvVar{}
	for _, e := range a.Env {
		asked[e.Name] = e
	}
	for _, e := range s.Env {
		if slices.ContainsFunc(a.Env, func(x corev1.EnvVar) bool {
			return x.Name == e.Name && x.Value == e.Value && ptrEqualEnv(x.ValueFrom, e.ValueFrom)
		}) {
			continue
		}
		ae, ok := asked[e.Name]
		secret := e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
		switch {
		case !ok:
			d.add(path+".env["+e.Name+"]", "none", envSource(e), secret)
		default:
			d.add(path+".env["+e.Name+"]", envSource(ae), "changed "+envSource(e), secret)
		}
	}
	for _, e := range s.EnvFrom {
		if slices.ContainsFunc(a.EnvFrom, func(x corev1.EnvFromSource) bool { return envFromName(x) == envFromName(e) }) {
			continue
		}
		d.add(path+".envFrom", "none more", envFromName(e), e.SecretRef != nil)
	}
}

func envSource(e corev1.EnvVar) string {
	switch {
	case e.ValueFrom == nil:
		return "a value"
	case e.ValueFrom.SecretKeyRef != nil:
		return "from secret " + quote(e.ValueFrom.SecretKeyRef.Name)
	case e.ValueFrom.ConfigMapKeyRef != nil:
		return "from configMap " + quote(e.ValueFrom.ConfigMapKeyRef.Name)
	}
	return "from the Pod"
}

func envFromName(e corev1.EnvFromSource) string {
	switch {
	case e.SecretRef != nil:
		return "secret " + quote(e.SecretRef.Name)
	case e.ConfigMapRef != nil:
		return "configMap " + quote(e.ConfigMapRef.Name)
	}
	return "another source"
}

func ptrEqualEnv(a, b *corev1.EnvVarSource) bool {
	if a == nil || b == nil {
		return a == b
	}
	return envSource(corev1.EnvVar{ValueFrom: a}) == envSource(corev1.EnvVar{ValueFrom: b}) &&
		(a.SecretKeyRef == nil || a.SecretKeyRef.Key == b.SecretKeyRef.Key) &&
		(a.ConfigMapKeyRef == nil || a.ConfigMapKeyRef.Key == b.ConfigMapKeyRef.Key)
}

// samePinned: stored is asked pinned to a digest (a policy engine's
// verifyImages), the same repository.
func samePinned(asked, stored string) bool {
	repo, _, ok := strings.Cut(stored, "@sha256:")
	if !ok {
		return false
	}
	if r, _, found := strings.Cut(asked, "@"); found {
		return r == repo
	}
	// busybox:1.37 → busybox:1.37@sha256:… or busybox@sha256:…
	if repo == asked {
		return true
	}
	i := strings.LastIndex(asked, ":")
	return i > strings.LastIndex(asked, "/") && asked[:i] == repo
}

// addedTolerations lists the tolerations stored beyond those asked,
// leaving out the two DefaultTolerationSeconds adds to every Pod.
func addedTolerations(asked, stored []corev1.Toleration) []string {
	var out []string
	for _, t := range stored {
		if slices.ContainsFunc(asked, func(u corev1.Toleration) bool { return u.MatchToleration(&t) }) {
			continue
		}
		if (t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable) &&
			t.Effect == corev1.TaintEffectNoExecute && t.Operator == corev1.TolerationOpExists {
			continue
		}
		out = append(out, fmt.Sprintf("%s:%s", t.Key, t.Effect))
	}
	return out
}

func addedInts(asked, stored []int64) []string {
	var out []string
	for _, g := range stored {
		if !slices.Contains(asked, g) {
			out = append(out, fmt.Sprint(g))
		}
	}
	return out
}

func addedStrings(asked, stored []string) []string {
	var out []string
	for _, s := range stored {
		if !slices.Contains(asked, s) {
			out = append(out, s)
		}
	}
	return out
}

func either[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func ptrIf(q resource.Quantity, ok bool) *resource.Quantity {
	if !ok {
		return nil
	}
	return &q
}

func showQuantity(q *resource.Quantity) string {
	if q == nil {
		return "none"
	}
	return q.String()
}

func showInt(i *int64) string {
	if i == nil {
		return "unset"
	}
	return fmt.Sprint(*i)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func quoteIf(s string, ok bool) string {
	if !ok {
		return "none"
	}
	return quote(s)
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func showProbe(p *corev1.Probe) string {
	if p == nil {
		return "none"
	}
	return "another"
}
