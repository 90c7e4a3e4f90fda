package e2b

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/kubectl-agentkernel/pkg/e2b/api"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

// E2B's page sizes: 100 unless asked, at most 100.
const (
	defaultPage = 100
	maxPage     = 100
)

// maxFilter bounds a list's metadata filter.
const maxFilter = 4096

// ListSandboxesV2 lists the namespace's sandboxes, running and paused,
// newest first unless asked, a page at a time: the next page's token
// (X-Next-Token) is where this one ended, so a sandbox made or killed
// between pages shifts nothing.
func (s *Server) ListSandboxesV2(w http.ResponseWriter, r *http.Request, p api.ListSandboxesV2Params) {
	limit := defaultPage
	if p.Limit != nil {
		if *p.Limit < 1 || *p.Limit > maxPage {
			s.writeError(w, errorf(http.StatusBadRequest, "limit must be from 1 to %d", maxPage))
			return
		}
		limit = int(*p.Limit)
	}
	var after *cursor
	if p.NextToken != nil && *p.NextToken != "" {
		c, err := parseCursor(*p.NextToken)
		if err != nil {
			s.writeError(w, err)
			return
		}
		after = c
	}
	want, err := parseMetadataFilter(p.Metadata)
	if err != nil {
		s.writeError(w, err)
		return
	}
	states := []api.SandboxState{api.Running, api.Paused}
	if p.State != nil && len(*p.State) > 0 {
		states = *p.State
		for _, st := range states {
			if st != api.Running && st != api.Paused {
				s.writeError(w, errorf(http.StatusBadRequest, "state %.20q is neither running nor paused", st))
				return
			}
		}
	}
	asc := p.Order != nil && *p.Order == api.Asc
	if p.Order != nil && *p.Order != api.Asc && *p.Order != api.Desc {
		s.writeError(w, errorf(http.StatusBadRequest, "order must be asc or desc"))
		return
	}

	ctx := r.Context()
	pods, err := sandbox.List(ctx, s.o.Clientset, s.o.Namespace, "")
	if err != nil {
		s.writeError(w, err)
		return
	}
	var all []api.ListedSandbox
	running := 0
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue // ended: gone, or (persistent) listed as paused below
		}
		running++
		if slices.Contains(states, api.Running) {
			all = append(all, s.listed(pod))
		}
	}
	if slices.Contains(states, api.Paused) {
		suspended, err := sandbox.ListSuspended(ctx, s.o.Clientset, s.o.Namespace, "", pods)
		if err != nil {
			s.writeError(w, err)
			return
		}
		for i := range suspended {
			all = append(all, s.suspendedListed(&suspended[i]))
		}
	}
	all = slices.DeleteFunc(all, func(l api.ListedSandbox) bool {
		return !matches(l, want) ||
			p.Template != nil && *p.Template != "" && l.TemplateID != *p.Template ||
			p.StartedAfter != nil && l.StartedAt.Before(*p.StartedAfter)
	})
	slices.SortFunc(all, func(a, b api.ListedSandbox) int { return cursorOf(a).compare(cursorOf(b), asc) })
	if after != nil {
		all = slices.DeleteFunc(all, func(l api.ListedSandbox) bool { return cursorOf(l).compare(*after, asc) <= 0 })
	}
	if len(all) > limit {
		all = all[:limit]
		w.Header().Set("X-Next-Token", cursorOf(all[limit-1]).String())
	}
	w.Header().Set("X-Total-Running", strconv.Itoa(running))
	if all == nil {
		all = []api.ListedSandbox{}
	}
	writeJSON(w, http.StatusOK, all)
}

func matches(l api.ListedSandbox, want map[string]string) bool {
	for k, v := range want {
		if l.Metadata == nil || (*l.Metadata)[k] != v {
			return false
		}
	}
	return true
}

// parseMetadataFilter reads E2B's metadata filter: a query string
// ("user=abc&app=prod") whose keys and values are each URL-encoded once
// more (the SDK's encodeURIComponent).
func parseMetadataFilter(q *string) (map[string]string, error) {
	if q == nil || *q == "" {
		return nil, nil
	}
	if len(*q) > maxFilter {
		return nil, errorf(http.StatusBadRequest, "metadata filter is longer than %d bytes", maxFilter)
	}
	vals, err := url.ParseQuery(*q)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "metadata filter is not key=value pairs joined by &: %v", err)
	}
	want := map[string]string{}
	for k, vs := range vals {
		key, err1 := url.PathUnescape(k)
		val, err2 := url.PathUnescape(vs[len(vs)-1])
		if err1 != nil || err2 != nil {
			return nil, errorf(http.StatusBadRequest, "metadata filter: keys and values must be URL-encoded")
		}
		want[key] = val
	}
	return want, nil
}

// cursor is a place in the list's order: start time, then ID.
type cursor struct {
	T  time.Time `json:"t"`
	ID string    `json:"id"`
}

func cursorOf(l api.ListedSandbox) cursor { return cursor{T: l.StartedAt, ID: l.SandboxID} }

// compare orders by start (newest first unless asc), then by ID.
func (c cursor) compare(o cursor, asc bool) int {
	if d := c.T.Compare(o.T); d != 0 {
		if asc {
			return d
		}
		return -d
	}
	return strings.Compare(c.ID, o.ID)
}

func (c cursor) String() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseCursor(s string) (*cursor, error) {
	bad := errorf(http.StatusBadRequest, "nextToken is not one this server gave: pass the X-Next-Token of the previous page unchanged")
	if len(s) > 1024 {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var c cursor
	if json.Unmarshal(b, &c) != nil || c.ID == "" {
		return nil, bad
	}
	return &c, nil
}
