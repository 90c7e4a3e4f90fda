// Package agents holds the agent presets: data that says how to run a known
// AI coding agent in a sandbox (its image, how to install it, its command,
// the environment variables that carry its credentials, the network and
// resources it needs). The presets ship embedded in the binary as YAML and
// can be overridden and extended by a file of the user's; both are parsed
// here with errors that name the file, the line and the field.
package agents

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/egress/keys"
)

// Preset is one agent's defaults. Empty fields leave the sandbox's own
// defaults (or the flags) alone.
type Preset struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Image needs /bin/sh, which keeps the sandbox alive between commands.
	Image string `json:"image,omitempty"`
	// Install is a shell script run in the sandbox before the agent, for a
	// base image that does not contain it.
	Install string `json:"install,omitempty"`
	// Command is the agent's usual command line.
	Command     []string    `json:"command,omitempty"`
	Credentials Credentials `json:"credentials,omitzero"`
	// Inject says, per credential, how the namespace's egress proxy adds
	// the key to the agent's requests instead of the sandbox holding it
	// (inject.go); a credential not named here goes in the Secret.
	Inject   []keys.Injection  `json:"inject,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	Profile  string            `json:"profile,omitempty"`
	Network  string            `json:"network,omitempty"`
	ReadOnly *bool             `json:"readOnly,omitempty"`
	CPU      string            `json:"cpu,omitempty"`
	Memory   string            `json:"memory,omitempty"`
	// EphemeralStorage is also the size limit of each writable directory.
	EphemeralStorage string `json:"ephemeralStorage,omitempty"`
	// Hosts are what the agent must reach (its model APIs, the registry its
	// install step uses), as --allow-host rules. They are used only when
	// the user fences egress by host name: --allow-host adds to them.
	Hosts []string `json:"hosts,omitempty"`
	// Persist makes the preset's sandboxes persistent, as --persist does:
	// /workspace and $HOME on a PersistentVolumeClaim of this size ("":
	// disposable). StorageClass and Retain are --storage-class and
	// --retain (a duration, e.g. 168h), and need Persist.
	Persist      string `json:"persist,omitempty"`
	StorageClass string `json:"storageClass,omitempty"`
	Retain       string `json:"retain,omitempty"`

	// Source says where the preset came from: "embedded", a file, or
	// "embedded, overridden by FILE".
	Source string `json:"source"`

	// where records the file and line each field was set at, for errors
	// found only once presets are merged.
	where map[string]position
	// unsetEnv are variables an override removes (env: {NAME: null}).
	unsetEnv []string
}

// Credentials name environment variables of the caller whose values go into
// the sandbox's Secret, exactly like --secret-env: never into the Pod spec,
// an argument list or a log.
type Credentials struct {
	// Required: each must be set.
	Required []string `json:"required,omitempty"`
	// AnyOf: at least one must be set; every one that is set is passed.
	AnyOf []string `json:"anyOf,omitempty"`
	// Optional: passed when set.
	Optional []string `json:"optional,omitempty"`
}

// IsZero reports whether no credential is named (for omitzero).
func (c Credentials) IsZero() bool {
	return len(c.Required) == 0 && len(c.AnyOf) == 0 && len(c.Optional) == 0
}

// MissingCredentialError: a credential the preset needs is not in the
// caller's environment.
type MissingCredentialError struct {
	Agent string
	// Names lists the variable, or the alternatives of which none is set.
	Names []string
}

func (e *MissingCredentialError) Error() string {
	what := e.Names[0]
	if len(e.Names) > 1 {
		what = "one of " + strings.Join(e.Names, ", ")
	}
	return fmt.Sprintf("--agent %s needs %s in your environment: export it first (its value goes into the sandbox's Secret, never into the Pod spec or a command line)", e.Agent, what)
}

// Resolve returns the names of the variables to pass, in the preset's
// order, given a way to read the caller's environment. given reports names
// the caller already passes some other way (--env, --secret-env); they
// count as set and are not returned again.
func (c Credentials) Resolve(agent string, lookup func(string) (string, bool), given func(string) bool) ([]string, error) {
	set := func(n string) bool {
		if given(n) {
			return true
		}
		_, ok := lookup(n)
		return ok
	}
	var names []string
	add := func(n string) {
		if !given(n) {
			names = append(names, n)
		}
	}
	for _, n := range c.Required {
		if !set(n) {
			return nil, &MissingCredentialError{Agent: agent, Names: []string{n}}
		}
		add(n)
	}
	if len(c.AnyOf) > 0 {
		found := false
		for _, n := range c.AnyOf {
			if set(n) {
				found = true
				add(n)
			}
		}
		if !found {
			return nil, &MissingCredentialError{Agent: agent, Names: c.AnyOf}
		}
	}
	for _, n := range c.Optional {
		if set(n) {
			add(n)
		}
	}
	return names, nil
}

// All names every credential, in the preset's order.
func (c Credentials) All() []string {
	return slices.Concat(c.Required, c.AnyOf, c.Optional)
}

// InImage reports whether the preset's image is meant to contain the agent
// (no install step).
func (p *Preset) InImage() bool { return strings.TrimSpace(p.Install) == "" }

//go:embed agents.yaml
var embedded []byte

// EmbeddedSource is the Source of presets that ship with the plugin.
const EmbeddedSource = "embedded"

// Set is a merged collection of presets.
type Set struct {
	byName map[string]*Preset
}

// Get returns the preset called name.
func (s *Set) Get(name string) (*Preset, error) {
	if p, ok := s.byName[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("unknown agent preset %q: use one of %s (list them with: kubectl agentkernel agents)", name, strings.Join(s.Names(), ", "))
}

// Names lists the presets' names in order.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns the presets ordered by name.
func (s *Set) All() []*Preset {
	var out []*Preset
	for _, n := range s.Names() {
		out = append(out, s.byName[n])
	}
	return out
}

// maxFileSize bounds a user's presets file: it is read whole.
const maxFileSize = 1 << 20

// DefaultUserFile is $XDG_CONFIG_HOME/agentkernel/agents.yaml, or
// ~/.config/agentkernel/agents.yaml when XDG_CONFIG_HOME is not set, on
// every platform (as kubectl's own ~/.kube is). "" if there is no home.
func DefaultUserFile() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) { // the XDG spec says to ignore a relative one
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "agentkernel", "agents.yaml")
}

// Load returns the embedded presets merged with those of the user's file.
// file "" means DefaultUserFile, which may be missing; a file named
// explicitly (explicit) must exist.
func Load(file string, explicit bool) (*Set, error) {
	base, err := Parse(EmbeddedSource, embedded)
	if err != nil {
		return nil, fmt.Errorf("the embedded agent presets are broken (a bug in this build): %w", err)
	}
	if file == "" {
		file = DefaultUserFile()
	}
	var user []*Preset
	if file != "" {
		data, err := readFile(file)
		switch {
		case os.IsNotExist(err) && !explicit:
		case err != nil:
			return nil, fmt.Errorf("reading agent presets: %w", err)
		default:
			if user, err = Parse(file, data); err != nil {
				return nil, err
			}
		}
	}
	return Merge(base, user)
}

func readFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes; is it really an agent presets file?", file, maxFileSize)
	}
	return data, nil
}
