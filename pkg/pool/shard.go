package pool

import (
	"math/rand/v2"
	"strconv"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// A claim lists its pool's unclaimed members and takes one. With many
// members and many claimants at once that list is most of what the API
// server spends (a CPU profile of 200 claims from 50 clients, beside a
// thousand sandboxes: a third of its time in those lists — encoding and
// compressing 200 Pods for every claim). So each member carries a random
// shard, and a claim first lists a few shards only: about
// claimCandidates members, a different few for each claimant, and the
// whole pool only when none of those could be claimed.

// LabelShard is a member's shard: one of shards values, drawn at random
// when the member is made. It says nothing about the member but where a
// claim looks first.
const LabelShard = "agentkernel/shard"

// shards is how many shard values there are.
const shards = 16

// claimCandidates is about how many members a claim's first list holds:
// enough that claimants starting together rarely meet on the same one.
const claimCandidates = 24

func newShard() string { return strconv.Itoa(rand.IntN(shards)) }

// shardRequirement is the label requirement of a claim's first list in a
// pool of size members — a random choice of shard values that together
// hold about claimCandidates — and false when the pool is small enough to
// list whole.
func shardRequirement(size int) (labels.Requirement, bool) {
	n := (shards*claimCandidates + size - 1) / max(size, 1)
	if n >= shards {
		return labels.Requirement{}, false
	}
	values := make([]string, 0, n)
	for _, v := range rand.Perm(shards)[:max(n, 1)] {
		values = append(values, strconv.Itoa(v))
	}
	req, err := labels.NewRequirement(LabelShard, selection.In, values)
	if err != nil {
		return labels.Requirement{}, false
	}
	return *req, true
}
