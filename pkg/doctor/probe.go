package doctor

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox/fence"
	"github.com/agentkernel/kubectl-agentkernel/pkg/untrusted"
)

// The probe: NetworkPolicy is enforced only if something in the cluster
// enforces it, which the API cannot show. So it starts two small sandboxes:
// a "server" with no fence, listening on three ports, and a fenced "client"
// whose policy allows the server on the first port by pod selector, and
// every public address (never a private one) on the second. Then:
//
//	port 1 must connect: the control. Without it a refusal proves nothing
//	       (no pod network, an image without nc).
//	port 3 must not: no rule allows it, so a fence that holds refuses it.
//	port 2 must not when the server's address is private: the blocked
//	       ranges (ipBlock except) hold.
//
// Both sandboxes are deleted whatever happens, and carry a TTL in case
// even that fails.

// probeScript (run in the server) serves a token on three ports for a
// bounded time, then checks one of them from inside. Arguments: token,
// ports, seconds.
const probeScript = `set -e
d=/tmp/agentkernel-probe
mkdir -p "$d"
echo "$0" > "$d/index.html"
for p in "$1" "$2" "$3"; do
  timeout "$4" httpd -f -p "$p" -h "$d" </dev/null >/dev/null 2>&1 &
done
sleep 1
printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 127.0.0.1 "$1"`

// connectScript (run in the client) fetches the token. Arguments: address, port.
const connectScript = `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 "$0" "$1" 2>&1`

// probeWindow is how long a connection is retried (every probeEvery):
// policies take effect some seconds after they are made on some
// implementations. Variables for the tests.
var probeWindow, probeEvery = 30 * time.Second, time.Second

// execTimeout bounds one command in a probe sandbox: generous, since a
// loaded node takes seconds per exec.
const execTimeout = 2 * time.Minute

// run starts the two sandboxes, has the server listen, and judges the
// fence from the client; both sandboxes are deleted whatever happens.
func (p *Probe) run(ctx context.Context, env *Env) Result {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	id := sandbox.RandomHex(3)
	token := "agentkernel-probe-" + id + sandbox.RandomHex(8)
	port := randomPort()
	ports := []int32{port, port + 1, port + 2}
	server, client := p.specs("doctor-"+id, env.Namespace, timeout, ports)

	srv, cli, made, err := startBoth(ctx, env, &server, &client, timeout)
	defer func() {
		// Whatever happened: the cleanup context outlives a cancelled ctx.
		cctx, cancel := sandbox.CleanupContext(ctx)
		defer cancel()
		for _, pod := range made {
			if err := sandbox.DeletePod(cctx, env.Clientset, pod, ptr.To[int64](0)); err != nil && !isNotFound(err) {
				env.progress("probe: could not delete sandbox/%s (its TTL ends it within %s): %v", sandbox.NameOf(pod), timeout, err)
			}
		}
	}()
	cannot := func(err error) Result {
		return warn("could not run the probe: "+err.Error(), "fix that and run doctor --probe again (--probe-image needs sh, httpd, nc and timeout, as busybox has)")
	}
	if err != nil {
		return cannot(err)
	}
	out, err := p.exec(ctx, srv, probeScript, token, itoa(ports[0]), itoa(ports[1]), itoa(ports[2]), strconv.Itoa(int(timeout.Seconds())+60))
	if err != nil || !strings.Contains(out, token) {
		return cannot(fmt.Errorf("the listener in sandbox/%s did not start (%v): %q", server.Name, err, untrusted.Truncate(out, 200)))
	}
	ip := srv.Status.PodIP
	if ip == "" {
		return cannot(fmt.Errorf("sandbox/%s has no IP", server.Name))
	}
	return p.judge(ctx, env, cli, client.Name, ip, token, ports)
}

// specs are the probe's two sandboxes, named from prefix: a server with no
// fence, and a client whose policy allows the server on ports[0] by its
// labels and every public address on ports[1].
func (p *Probe) specs(prefix, namespace string, timeout time.Duration, ports []int32) (server, client sandbox.Spec) {
	server = p.spec(prefix+"-server", namespace, timeout)
	server.Network = sandbox.NetworkOpen
	server.Profile = sandbox.ProfilePermissive
	client = p.spec(prefix+"-client", namespace, timeout)
	client.Network = sandbox.NetworkEgress
	client.DNS = fence.DefaultDNS()
	client.AllowEgress = []fence.Destination{
		{Pods: server.SelectorLabels(), Ports: []fence.Port{tcp(ports[0])}},
		{CIDR: "0.0.0.0/0", Ports: []fence.Port{tcp(ports[1])}},
		{CIDR: "::/0", Ports: []fence.Port{tcp(ports[1])}},
	}
	return server, client
}

// startBoth creates the server and the client at once: the client's policy
// names the server by its labels, not its address, so neither waits for
// the other. made holds every Pod created, for the caller to delete, even
// when err is not nil.
func startBoth(ctx context.Context, env *Env, server, client *sandbox.Spec, timeout time.Duration) (srv, cli *corev1.Pod, made []*corev1.Pod, err error) {
	var (
		mu             sync.Mutex
		srvErr, cliErr error
		wg             sync.WaitGroup
	)
	for _, s := range []struct {
		spec *sandbox.Spec
		what string
		pod  **corev1.Pod
		err  *error
	}{{server, "no fence, listening", &srv, &srvErr}, {client, "fenced", &cli, &cliErr}} {
		env.progress("probe: starting sandbox/%s (%s)", s.spec.Name, s.what)
		wg.Go(func() {
			c, err := sandbox.Create(ctx, env.Clientset, s.spec, sandbox.CreateOptions{Wait: true, Timeout: timeout})
			*s.err = err
			if err == nil {
				mu.Lock()
				made = append(made, c.Pod)
				mu.Unlock()
				*s.pod = c.Pod
			}
		})
	}
	wg.Wait()
	return srv, cli, made, errors.Join(srvErr, cliErr)
}

// judge connects from the client to the server at ip and decides from the
// answers whether the fence holds (client names the client sandbox): ports[0] must connect, ports[2] must
// not, and ports[1] must not when ip is private.
func (p *Probe) judge(ctx context.Context, env *Env, cli *corev1.Pod, client, ip, token string, ports []int32) Result {
	// reach tells whether the client got the server's token on port. A
	// command that ran and failed (nc's exit status) is an answer; an exec
	// that did not run is none, and ends the probe undecided.
	var last string
	reach := func(port int32) (bool, error) {
		out, err := p.exec(ctx, cli, connectScript, ip, itoa(port))
		if _, exited := sandbox.ExitCode(err); err != nil && !exited {
			return false, fmt.Errorf("running nc in sandbox/%s: %w", client, err)
		}
		last = untrusted.Truncate(out, 200)
		return strings.Contains(out, token), nil
	}
	not := func(port int32) func() (bool, error) {
		return func() (bool, error) {
			ok, err := reach(port)
			return !ok, err
		}
	}
	undecided := func(err error) Result {
		return warn("cannot tell whether NetworkPolicy is enforced: "+err.Error(), "run doctor --probe again; if it persists, check that exec works in the namespace")
	}

	env.progress("probe: %s -> %s:%d (allowed by its policy)", client, ip, ports[0])
	if ok, err := retry(ctx, func() (bool, error) { return reach(ports[0]) }); err != nil {
		return undecided(err)
	} else if !ok {
		return warn(fmt.Sprintf("cannot tell: the fenced sandbox did not reach the unfenced one (%s:%d) even where its policy allows it (nc said %q)", ip, ports[0], last),
			"check that Pods can reach each other here at all; the probe image needs nc and httpd")
	}
	env.progress("probe: %s -> %s:%d (no rule allows it)", client, ip, ports[2])
	refused, err := not(ports[2])()
	if err != nil {
		return undecided(err)
	}
	if !refused {
		if ok, err := retry(ctx, not(ports[2])); err != nil {
			return undecided(err)
		} else if !ok {
			return fail(fmt.Sprintf("NetworkPolicy is NOT enforced: a fenced sandbox reached an unfenced one (%s:%d) on a port no rule allows, for %s", ip, ports[2], probeWindow),
				"install a NetworkPolicy implementation (Calico, Cilium, kube-network-policies, ...); until then no sandbox has a network fence here, not even --network none")
		}
	}
	late := !refused // it got through at first, and was refused only later
	private := isPrivate(ip)
	if private {
		env.progress("probe: %s -> %s:%d (public-internet rule, private address)", client, ip, ports[1])
		if ok, err := retry(ctx, not(ports[1])); err != nil {
			return undecided(err)
		} else if !ok {
			return fail(fmt.Sprintf("private addresses are NOT blocked: the fenced sandbox reached %s:%d through its rule for public addresses (0.0.0.0/0 except private ranges)", ip, ports[1]),
				"the NetworkPolicy implementation ignores ipBlock except; until it is fixed, egress sandboxes can reach the cluster's private addresses")
		}
	}
	found := fmt.Sprintf("enforced: a fenced sandbox reached an unfenced one (%s) only on the port its policy allows (%d), not on another (%d)", ip, ports[0], ports[2])
	if private {
		found += fmt.Sprintf(", nor through its public-internet rule to that private address (%d)", ports[1])
	} else {
		found += "; the Pod address is not private, so the private-range block could not be probed"
	}
	if late {
		return warn(found+", but only some seconds after the sandbox started: in that window its fence did not hold",
			"use a NetworkPolicy implementation that programs policies before a Pod starts, or give sandboxes a moment before they run anything")
	}
	return ok("%s", found)
}

func (p *Probe) spec(name, namespace string, timeout time.Duration) sandbox.Spec {
	s := sandbox.NewSpec(name, namespace)
	if p.Image != "" {
		s.Image = p.Image
	}
	s.CPU = resource.MustParse("100m")
	s.Memory = resource.MustParse("64Mi")
	s.EphemeralStorage = resource.MustParse("64Mi")
	s.TTL = timeout + time.Minute
	return s
}

func (p *Probe) exec(ctx context.Context, pod *corev1.Pod, script string, args ...string) (string, error) {
	out := untrusted.Buffer{Max: maxProbeOutput}
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	err := p.Exec(pod).Run(ctx, append([]string{"sh", "-c", script}, args...), nil, &out, io.Discard)
	return out.String(), err
}

// retry calls cond until it holds, for probeWindow after its first answer
// (on a slow node the first exec alone can take longer than that), or
// until it fails to answer.
func retry(ctx context.Context, cond func() (bool, error)) (bool, error) {
	var deadline time.Time
	for {
		ok, err := cond()
		if ok || err != nil {
			return ok, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(probeWindow)
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-time.After(probeEvery):
		}
	}
}

func tcp(port int32) fence.Port {
	return fence.Port{Protocol: corev1.ProtocolTCP, Port: intstr.FromInt32(port)}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// randomPort picks three free-looking ports above the usual ones, so that
// the probe's listeners meet nothing else that listens.
func randomPort() int32 {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return 20000 + int32(binary.BigEndian.Uint16(b[:])%20000)
}

func isPrivate(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, b := range fence.BlockedRanges() {
		if b.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

func isNotFound(err error) bool {
	var nf *sandbox.NotFoundError
	return errors.As(err, &nf)
}

// maxProbeOutput bounds what the probe keeps of one command's output: what
// comes out of a sandbox is untrusted, and the probe needs only to find its
// token.
const maxProbeOutput = 64 << 10
