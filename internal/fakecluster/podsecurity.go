package fakecluster

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// RestrictedViolations is what the API server's Pod Security admission
// would refuse pod for at the restricted level ("" when it would admit it):
// it runs the Pod Security library itself, the same code the admission
// plugin runs.
func RestrictedViolations(t testing.TB, pod *corev1.Pod) string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	agg := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec))
	if agg.Allowed {
		return ""
	}
	return agg.ForbiddenReason() + ": " + agg.ForbiddenDetail()
}
