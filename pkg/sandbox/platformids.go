package sandbox

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/field"
)

// The annotations OpenShift's namespace controller puts on every project.
// Its default SCC, restricted-v2, admits a Pod only when runAsUser lies in
// the UID range (MustRunAsRange) and fsGroup in the supplemental groups
// (MustRunAs; the UID range when that annotation is absent), and assigns
// the first of each range to a Pod that sets none.
const (
	AnnotationSCCUIDRange           = "openshift.io/sa.scc.uid-range"
	AnnotationSCCSupplementalGroups = "openshift.io/sa.scc.supplemental-groups"
	AnnotationSCCMCS                = "openshift.io/sa.scc.mcs"
)

// IDRange is a closed range of UIDs or GIDs.
type IDRange struct{ Min, Max int64 }

func (r IDRange) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// IDRanges are the blocks an annotation gives.
type IDRanges []IDRange

// Contains says whether id lies in one of the ranges.
func (rs IDRanges) Contains(id int64) bool {
	for _, r := range rs {
		if id >= r.Min && id <= r.Max {
			return true
		}
	}
	return false
}

func (rs IDRanges) String() string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

// ParseIDRanges reads an SCC range annotation: comma-separated blocks,
// each START/SIZE (as OpenShift writes them: 1000680000/10000) or
// START-END. The value comes from a namespace, which anyone who may edit
// it controls, so it is parsed strictly.
func ParseIDRanges(s string) (IDRanges, error) {
	var out IDRanges
	for _, block := range strings.Split(s, ",") {
		block = strings.TrimSpace(block)
		var r IDRange
		if start, size, ok := strings.Cut(block, "/"); ok {
			min, err1 := strconv.ParseInt(start, 10, 64)
			n, err2 := strconv.ParseInt(size, 10, 64)
			if err1 != nil || err2 != nil || n <= 0 || min > (1<<31-1)-n+1 {
				return nil, fmt.Errorf("block %q is no START/SIZE range of IDs", block)
			}
			r = IDRange{min, min + n - 1}
		} else if start, end, ok := strings.Cut(block, "-"); ok {
			min, err1 := strconv.ParseInt(start, 10, 64)
			max, err2 := strconv.ParseInt(end, 10, 64)
			if err1 != nil || err2 != nil || max < min || max > 1<<31-1 {
				return nil, fmt.Errorf("block %q is no START-END range of IDs", block)
			}
			r = IDRange{min, max}
		} else {
			return nil, fmt.Errorf("block %q is neither START/SIZE nor START-END", block)
		}
		if r.Min < 0 {
			return nil, fmt.Errorf("block %q starts below 0", block)
		}
		out = append(out, r)
	}
	return out, nil
}

// NamespaceIDs are the UIDs and fsGroups a namespace's platform admits.
type NamespaceIDs struct {
	Namespace string
	UIDs      IDRanges
	// GIDs are the fsGroups admitted (the supplemental groups annotation,
	// or the UID range without it).
	GIDs IDRanges
}

// NamespaceIDsOf reads the SCC annotations of a namespace: nil when it has
// none (no platform that assigns UIDs), an error when they are malformed.
func NamespaceIDsOf(ns *corev1.Namespace) (*NamespaceIDs, error) {
	uids, ok := ns.Annotations[AnnotationSCCUIDRange]
	if !ok {
		return nil, nil
	}
	ids := &NamespaceIDs{Namespace: ns.Name}
	var err error
	if ids.UIDs, err = ParseIDRanges(uids); err != nil {
		return nil, fmt.Errorf("namespace %q: annotation %s=%q: %v", ns.Name, AnnotationSCCUIDRange, uids, err)
	}
	ids.GIDs = ids.UIDs
	if gids, ok := ns.Annotations[AnnotationSCCSupplementalGroups]; ok {
		if ids.GIDs, err = ParseIDRanges(gids); err != nil {
			return nil, fmt.Errorf("namespace %q: annotation %s=%q: %v", ns.Name, AnnotationSCCSupplementalGroups, gids, err)
		}
	}
	return ids, nil
}

// Fit makes s run as the namespace admits: without a chosen UID, as the
// first of its range (what restricted-v2 would assign); with one, only if
// it lies in the range. The group (runAsGroup, fsGroup) is the UID when
// the groups admit it, else the first of the groups.
func (s *Spec) Fit(ids *NamespaceIDs) error {
	if ids == nil {
		return nil
	}
	if !s.UIDChosen {
		s.UID = ids.UIDs[0].Min
	} else if !ids.UIDs.Contains(s.UID) {
		return field.Invalid("uid", "`uid` %d is outside the UIDs namespace %q admits (%s, its %s annotation: OpenShift's restricted-v2 SCC refuses any other); leave `uid` out to run as %d, the first of them, or choose one in the range",
			s.UID, ids.Namespace, ids.UIDs, AnnotationSCCUIDRange, ids.UIDs[0].Min)
	}
	s.GID = 0
	if !ids.GIDs.Contains(s.UID) {
		s.GID = ids.GIDs[0].Min
	}
	return nil
}

// FromNamespace fits s to its namespace's UID range, before anything is
// created. A namespace that does not exist yet (--create-namespace) has
// none. One that cannot be read is not an error: the sandbox keeps its
// UID, and an admission refusal about UID ranges then says why
// (RangeRefusal).
func (s *Spec) FromNamespace(ctx context.Context, cs kubernetes.Interface) error {
	s.namespaceUnread = nil
	ns, err := cs.CoreV1().Namespaces().Get(ctx, s.Namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		s.namespaceUnread = err
		return nil
	}
	ids, err := NamespaceIDsOf(ns)
	if err != nil {
		return err
	}
	return s.Fit(ids)
}

// gid is the group the sandbox runs as and its volumes belong to.
func (s *Spec) gid() int64 {
	if s.GID > 0 {
		return s.GID
	}
	return s.UID
}

// IsRangeRefusal says whether an API error is a platform's refusal of a
// UID or fsGroup outside a namespace's range: OpenShift's SCC admission
// words it "runAsUser: Invalid value: 1000: must be in the ranges: [...]"
// and "fsGroup: Invalid value: []int64{1000}: 1000 is not an allowed group".
func IsRangeRefusal(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "must be in the ranges") || strings.Contains(msg, "is not an allowed group")
}

// rangeRefusal explains a refused Pod when the namespace's platform
// assigns UIDs from a range: with the namespace unread, why the plugin
// could not pick from it.
func (s *Spec) rangeRefusal(err error) error {
	if !IsRangeRefusal(err) {
		return err
	}
	if s.namespaceUnread != nil {
		return field.Error{Field: "uid", Detail: fmt.Sprintf("%v; the namespace admits only UIDs in a range (OpenShift's SCC), and namespace %q could not be read to pick one (%v): give a `uid` in the range the message names, or ask an admin for get on it",
			err, s.Namespace, shortAPIError(s.namespaceUnread))}
	}
	return field.Error{Field: "uid", Detail: fmt.Sprintf("%v; the namespace admits only UIDs and fsGroups in the ranges named (OpenShift's SCC): give a `uid` in them, or leave it out to take the namespace's", err)}
}

// shortAPIError is an API error's reason, without the request it was for.
func shortAPIError(err error) string {
	if apierrors.IsForbidden(err) {
		return "forbidden"
	}
	return err.Error()
}
