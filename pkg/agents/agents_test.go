package agents

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
)

func TestEmbeddedPresets(t *testing.T) {
	set, err := Load(filepath.Join(t.TempDir(), "none.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"claude", "codex", "gemini", "aider", "opencode", "goose"} {
		p, err := set.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Source != EmbeddedSource || p.Image == "" || len(p.Command) == 0 || p.Description == "" {
			t.Errorf("%s: incomplete: %+v", name, p)
		}
		// Every agent talks to a model API: it needs credentials and egress.
		if p.Credentials.IsZero() {
			t.Errorf("%s names no credentials", name)
		}
		if prof, err := sandbox.ParseProfile(p.Profile); err != nil {
			t.Errorf("%s: %v", name, err)
		} else if network, _ := prof.Defaults(); network == sandbox.NetworkNone && p.Network == "" {
			t.Errorf("%s has no network: it could not reach its model", name)
		}
		// A base image without the agent must say how the agent gets in.
		if strings.Contains(p.Image, "library/node") && p.InImage() {
			t.Errorf("%s uses a base image but has no install step", name)
		}
	}
	if _, err := set.Get("nope"); err == nil || !strings.Contains(err.Error(), "use one of aider, claude, codex") || !strings.Contains(err.Error(), "kubectl agentkernel agents") {
		t.Errorf("unknown preset: %v", err)
	}
}

// Each problem is reported with the file, the line and the field.
func TestParseErrors(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want []string
	}{
		"bad values": {
			"agents:\n  claude:\n    memory: 4GB\n    readOnly: yes\n    profile: loose\n    network: wide\n    command: [\"\", x]\n    hosts: [\"*.com\"]\n",
			[]string{
				`f.yaml:3: agents.claude.memory: "4GB" is not a valid quantity (examples: 500m, 2, 512Mi, 4Gi)`,
				`f.yaml:4: agents.claude.readOnly: want true or false, not "yes"`,
				`f.yaml:5: agents.claude.profile: unknown profile "loose": use one of "restrictive", "moderate", "permissive"`,
				`f.yaml:6: agents.claude.network: unknown network "wide": use one of "none", "egress", "open"`,
				`f.yaml:7: agents.claude.command: the first word of a command must be a program, not empty`,
				`f.yaml:8: agents.claude.hosts: --allow-host "*.com": *.com covers a whole top-level domain; name the domain: *.example.com`,
			},
		},
		"unknown fields": {
			"apiVersion: agentkernel/v1alpha1\nagents:\n  x:\n    imgae: busybox\nspec: {}\n",
			[]string{
				"f.yaml:4: agents.x.imgae: unknown field; a preset has command, cpu, credentials, description, env, ephemeralStorage, hosts, image, inject, install, memory, network, persist, profile, readOnly, retain, storageClass",
				"f.yaml:5: spec: unknown field; a presets file has apiVersion, kind and agents",
			},
		},
		"header": {
			"apiVersion: v2\nkind: Pod\n",
			[]string{
				`f.yaml:1: apiVersion: "v2" is not supported: use agentkernel/v1alpha1`,
				`f.yaml:2: kind: "Pod" is not supported: use AgentPresets`,
			},
		},
		"shapes": {
			"agents:\n  a:\n    image: [x]\n    env: [A=1]\n    credentials: ANTHROPIC_API_KEY\n  b: busybox\n",
			[]string{
				"f.yaml:3: agents.a.image: want a single value, not a list",
				"f.yaml:4: agents.a.env: want a mapping (key: value lines), not a list",
				`f.yaml:5: agents.a.credentials: want a mapping (key: value lines), not "ANTHROPIC_API_KEY"`,
				`f.yaml:6: agents.b: want a mapping (key: value lines), not "busybox"`,
			},
		},
		"names": {
			"agents:\n  Claude: {image: x}\n  ok:\n    image: x\n    env:\n      1BAD: x\n    credentials:\n      required: [KEY]\n      anyOf: [KEY, 'has space']\n      sometimes: [X]\n",
			[]string{
				"f.yaml:2: agents.Claude: invalid preset name: use at most 40 lower-case letters, digits and '-', starting and ending with a letter or digit",
				`f.yaml:6: agents.ok.env.1BAD: invalid environment variable name "1BAD": use letters, digits, '_', '-' or '.', not starting with a digit`,
				"f.yaml:9: agents.ok.credentials.anyOf: KEY is already named in agents.ok.credentials.required",
				`f.yaml:9: agents.ok.credentials.anyOf: invalid environment variable name "has space": use letters, digits, '_', '-' or '.', not starting with a digit`,
				"f.yaml:10: agents.ok.credentials.sometimes: unknown field; credentials have required, anyOf and optional",
			},
		},
		"twice": {
			"agents:\n  a:\n    image: x\n    image: y\n  a: {image: z}\n",
			[]string{
				// The list of presets is read before each preset.
				"f.yaml:5: agents.a: set twice (first at line 2)",
				"f.yaml:4: agents.a.image: set twice (first at line 3)",
			},
		},
		"syntax":        {"agents:\n  a: [\n", []string{"f.yaml:2: did not find expected node content"}},
		"two documents": {"agents: {}\n---\nagents: {}\n", []string{"f.yaml:2: only one YAML document is allowed (remove the '---')"}},
		"not a mapping": {"- a\n", []string{"f.yaml:1: want a mapping (key: value lines), not a list"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestParseAcceptsWhatIsNeeded(t *testing.T) {
	for name, text := range map[string]string{
		"empty file":      "",
		"comments only":   "# nothing yet\n",
		"no agents":       "apiVersion: agentkernel/v1alpha1\nkind: AgentPresets\nagents:\n",
		"numbers as text": "agents:\n  n:\n    image: x\n    cpu: 2\n    env: {PORT: 8080}\n    command: [sleep, 10]\n",
	} {
		if _, err := Parse("f.yaml", []byte(text)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	got, err := Parse("f.yaml", []byte("agents:\n  n:\n    image: x\n    cpu: 2\n    env: {PORT: 8080}\n    command: [sleep, 10]\n    readOnly: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := got[0]
	if p.CPU != "2" || p.Env["PORT"] != "8080" || !reflect.DeepEqual(p.Command, []string{"sleep", "10"}) || p.ReadOnly == nil || *p.ReadOnly {
		t.Fatalf("%+v", p)
	}
	// Aliases stand for what they point at.
	got, err = Parse("f.yaml", []byte("agents:\n  a: &a {image: x, memory: 1Gi}\n  b: *a\n"))
	if err != nil || len(got) != 2 || got[1].Memory != "1Gi" {
		t.Fatalf("alias: %v %+v", err, got)
	}
}

func TestMergeOverridesAndExtends(t *testing.T) {
	base, err := Parse("embedded", []byte("agents:\n  claude:\n    image: node:22\n    install: npm i x\n    command: [claude]\n    env: {A: '1', B: '2'}\n    credentials: {anyOf: [K1, K2]}\n    memory: 4Gi\n"))
	if err != nil {
		t.Fatal(err)
	}
	user, err := Parse("/home/u/agents.yaml", []byte("agents:\n  claude:\n    image: my/claude:1\n    install: null\n    env: {B: null, C: '3'}\n  mine:\n    image: busybox\n    command: [sh]\n"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Merge(base, user)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := set.Get("claude")
	if c.Image != "my/claude:1" || !c.InImage() || c.Memory != "4Gi" || !reflect.DeepEqual(c.Command, []string{"claude"}) ||
		!reflect.DeepEqual(c.Env, map[string]string{"A": "1", "C": "3"}) || !reflect.DeepEqual(c.Credentials.AnyOf, []string{"K1", "K2"}) {
		t.Errorf("merged claude: %+v", c)
	}
	if c.Source != "embedded, overridden by /home/u/agents.yaml" {
		t.Errorf("source %q", c.Source)
	}
	// The embedded preset itself is untouched.
	if base[0].Image != "node:22" || len(base[0].Env) != 2 {
		t.Errorf("merge changed the base: %+v", base[0])
	}
	m, _ := set.Get("mine")
	if m.Source != "/home/u/agents.yaml" || m.Image != "busybox" {
		t.Errorf("new preset: %+v", m)
	}
	if got := set.Names(); !reflect.DeepEqual(got, []string{"claude", "mine"}) {
		t.Errorf("names %v", got)
	}
}

// Problems only the merged result shows point at the line that caused them.
func TestMergeErrors(t *testing.T) {
	base, err := Parse("embedded", []byte("agents:\n  claude:\n    image: node:22\n    credentials: {required: [KEY]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	user, err := Parse("u.yaml", []byte("agents:\n  claude:\n    env:\n      KEY: oops\n  noimage:\n    command: [x]\n  cleared:\n    image: null\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Merge(base, user)
	want := []string{
		"u.yaml:8: agents.cleared.image: no image: a preset needs one (e.g. image: docker.io/library/node:22)",
		"u.yaml:4: agents.claude.env: KEY is both a plain variable here and a credential: a credential's value must come from your environment, through the Secret",
		"u.yaml:6: agents.noimage.image: no image: a preset needs one (e.g. image: docker.io/library/node:22)",
	}
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.Split(err.Error(), "\n")
	// Sorted by preset name: claude, cleared, noimage.
	want = []string{want[1], want[0], want[2]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestResolveCredentials(t *testing.T) {
	env := map[string]string{"A": "a", "C": "", "OPT": "o"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	none := func(string) bool { return false }
	cases := []struct {
		name  string
		c     Credentials
		given func(string) bool
		want  []string
		err   string
	}{
		{"required present", Credentials{Required: []string{"A"}}, none, []string{"A"}, ""},
		{"required missing", Credentials{Required: []string{"A", "B"}}, none, nil, "--agent x needs B in your environment"},
		{"set but empty counts", Credentials{Required: []string{"C"}}, none, []string{"C"}, ""},
		{"anyOf takes all that are set", Credentials{AnyOf: []string{"B", "A", "C"}}, none, []string{"A", "C"}, ""},
		{"anyOf none", Credentials{AnyOf: []string{"B", "D"}}, none, nil, "--agent x needs one of B, D in your environment"},
		{"optional", Credentials{Required: []string{"A"}, Optional: []string{"OPT", "NOPE"}}, none, []string{"A", "OPT"}, ""},
		{"given elsewhere", Credentials{Required: []string{"B"}, AnyOf: []string{"D"}}, func(n string) bool { return n == "B" || n == "D" }, nil, ""},
	}
	for _, tc := range cases {
		got, err := tc.c.Resolve("x", lookup, tc.given)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) || !strings.Contains(err.Error(), "never into the Pod spec") {
				t.Errorf("%s: err = %v", tc.name, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestLoadUserFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	if got := DefaultUserFile(); got != filepath.Join(dir, "agentkernel", "agents.yaml") {
		t.Fatalf("default file %s", got)
	}
	// Missing: fine unless named explicitly.
	if _, err := Load("", false); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing, true); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("explicit missing file: %v", err)
	}
	file := DefaultUserFile()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("agents:\n  mine: {image: busybox, command: [sh]}\n  claude: {memory: 8Gi}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := Load("", false)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := set.Get("claude"); p.Memory != "8Gi" || p.Source != "embedded, overridden by "+file {
		t.Errorf("claude: %+v", p)
	}
	if p, err := set.Get("mine"); err != nil || p.Source != file {
		t.Errorf("mine: %+v %v", p, err)
	}
	if err := os.WriteFile(file, []byte("agents:\n  claude: {memory: lots}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", false); err == nil || err.Error() != file+`:2: agents.claude.memory: "lots" is not a valid quantity (examples: 500m, 2, 512Mi, 4Gi)` {
		t.Fatalf("bad user file: %v", err)
	}
	if err := os.WriteFile(file, make([]byte, maxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", false); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge file: %v", err)
	}
	// A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
	t.Setenv("XDG_CONFIG_HOME", "relative/dir")
	if got := DefaultUserFile(); strings.HasPrefix(got, "relative") {
		t.Fatalf("relative XDG_CONFIG_HOME used: %s", got)
	}
}
