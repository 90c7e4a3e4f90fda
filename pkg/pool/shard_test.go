package pool

import (
	"context"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func TestShardRequirementHoldsAboutClaimCandidates(t *testing.T) {
	for _, size := range []int{0, 1, 10, 24} {
		if req, ok := shardRequirement(size); ok {
			t.Errorf("pool of %d: a shard list (%s); a pool this small is listed whole", size, req.String())
		}
	}
	for size, values := range map[int]int{25: 0, 48: 8, 200: 2, 384: 1, 10000: 1} {
		req, ok := shardRequirement(size)
		if values == 0 {
			if ok {
				t.Errorf("pool of %d: shard list %s, want the whole pool (16 of 16 values)", size, req.String())
			}
			continue
		}
		if !ok || req.Key() != LabelShard || req.Values().Len() != values {
			t.Errorf("pool of %d: %v %v, want %d of the %d shard values", size, req.String(), ok, values, shards)
		}
		for _, v := range req.Values().UnsortedList() {
			if n, err := strconv.Atoi(v); err != nil || n < 0 || n >= shards {
				t.Errorf("pool of %d: shard value %q", size, v)
			}
		}
	}
}

// listSelectors records the label selector of every list of pods.
func listSelectors(actions []k8stesting.Action) []string {
	var sels []string
	for _, a := range actions {
		if l, ok := a.(k8stesting.ListAction); ok && a.GetResource().Resource == "pods" {
			sels = append(sels, l.GetListRestrictions().Labels.String())
		}
	}
	return sels
}

// Every member carries a shard; a claim from a large pool lists a few
// shards first and takes a member from them, without listing the pool.
func TestClaimFromALargePoolListsAFewShardsFirst(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "big", 60, nil)
	for _, p := range podsIn(t, cs, "ns") {
		if n, err := strconv.Atoi(p.Labels[LabelShard]); err != nil || n < 0 || n >= shards {
			t.Fatalf("member %s has shard label %q", p.Name, p.Labels[LabelShard])
		}
	}
	// Claim until one comes from the shard list (a random few shards of
	// 60 members may hold no member at all, now and then).
	for i := range 5 {
		cs.ClearActions()
		a, err := Acquire(context.Background(), cs, claimSpec("task"+strconv.Itoa(i)), AcquireOptions{Pool: "big"})
		if err != nil || !a.Warm {
			t.Fatalf("claim %d: %+v %v", i, a, err)
		}
		sels := listSelectors(cs.Actions())
		var warmLists []string
		for _, s := range sels {
			if strings.Contains(s, "!"+sandbox.LabelSandbox) {
				warmLists = append(warmLists, s)
			}
		}
		if len(warmLists) == 0 || !strings.Contains(warmLists[0], LabelShard+" in (") {
			t.Fatalf("claim %d's first list of members: %v, want one by %s", i, warmLists, LabelShard)
		}
		if len(warmLists) == 1 {
			return // claimed from the shards alone
		}
	}
	t.Fatal("five claims from a pool of 60 each listed the whole pool: the shard list never held a member")
}

// When the shards a claim looks at hold no ready member, it claims from
// the rest of the pool.
func TestClaimFallsBackToTheWholePool(t *testing.T) {
	cs, tr := poolCluster(t)
	newTestPool(t, cs, tr, "big", 60, nil)
	// One member ready, in no shard a claim's first list can name (a
	// member made before shards, say); the others still starting.
	ready := ""
	for _, p := range podsIn(t, cs, "ns") {
		if ready == "" {
			ready = p.Name
			setShard(t, tr, p, "none")
			continue
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodPending}
		p.ResourceVersion = ""
		if err := tr.Update(corev1.SchemeGroupVersion.WithResource("pods"), &p, "ns"); err != nil {
			t.Fatal(err)
		}
	}
	cs.ClearActions()
	a, err := Acquire(context.Background(), cs, claimSpec("task"), AcquireOptions{Pool: "big"})
	if err != nil {
		t.Fatal(err)
	}
	if !a.Warm || a.Pod.Name != ready {
		t.Fatalf("got %s (warm %v, %s), want the one ready member %s", a.Pod.Name, a.Warm, a.Why, ready)
	}
	var warmLists []string
	for _, s := range listSelectors(cs.Actions()) {
		if strings.Contains(s, "!"+sandbox.LabelSandbox) {
			warmLists = append(warmLists, s)
		}
	}
	if len(warmLists) != 2 || !strings.Contains(warmLists[0], LabelShard) || strings.Contains(warmLists[1], LabelShard) {
		t.Fatalf("lists of members: %v; want a few shards, then the whole pool", warmLists)
	}
}

// The whole pool's list holds the shards' members again: a claim does not
// try them twice.
func TestNotTriedLeavesOutWhatWasTried(t *testing.T) {
	pod := func(uid string) corev1.Pod { return corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}} }
	all := []corev1.Pod{pod("a"), pod("b"), pod("c"), pod("d")}
	got := notTried(all, []corev1.Pod{pod("b"), pod("d")})
	if len(got) != 2 || got[0].UID != "a" || got[1].UID != "c" {
		t.Fatalf("notTried = %v, want a and c", got)
	}
	if all[1].UID != "b" || all[3].UID != "d" {
		t.Fatalf("notTried changed its input: %v", all)
	}
	if got := notTried(all, nil); len(got) != 4 {
		t.Fatalf("nothing tried: %d left, want 4", len(got))
	}
}

func setShard(t *testing.T, tr *rvTracker, p corev1.Pod, shard string) {
	t.Helper()
	p.Labels[LabelShard] = shard
	p.ResourceVersion = ""
	if err := tr.Update(corev1.SchemeGroupVersion.WithResource("pods"), &p, "ns"); err != nil {
		t.Fatal(err)
	}
}
