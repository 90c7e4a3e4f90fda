package sandbox

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// privateRanges are never reachable from an egress-only sandbox: the cluster's
// own networks, the node's neighbours, and cloud metadata (169.254.169.254).
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"}
var privateRanges6 = []string{"fc00::/7", "fe80::/10", "::1/128"}

// NetworkPolicy returns the sandbox's NetworkPolicy, or nil when the network
// is open. It must exist before the Pod so that there is no moment in which
// a no-network sandbox has network.
func (s *Spec) NetworkPolicy() *networkingv1.NetworkPolicy {
	if s.Network == NetworkOpen {
		return nil
	}
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: s.objectMeta(PodName(s.Name)),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: s.SelectorLabels()},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	if s.Network == NetworkEgress {
		dnsPorts := []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(53))},
		}
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: privateRanges}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: privateRanges6}},
			}},
			{
				To: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
					PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
				}},
				Ports: dnsPorts,
			},
		}
	}
	np.Spec.Egress = append(np.Spec.Egress, s.egressProxyRules()...)
	return np
}
