// Package pool keeps warm sandboxes ready to be claimed, with nothing
// installed in the cluster: a pool's definition is a core/v1 PodTemplate,
// its members are sandboxes made by sandbox.Create and shaped by this
// package (sandbox.Spec.Shape), and a claim is one preconditioned write
// that turns a member into a named sandbox. Refills, member trust, claim
// environment delivery and pool gc live here; package sandbox knows
// nothing of pools.
package pool
