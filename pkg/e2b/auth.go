package e2b

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// apiKeyPattern is the shape the SDK itself checks an API key against
// (before it sends one): e2b_ and hex digits.
var apiKeyPattern = regexp.MustCompile(`^e2b_[0-9a-f]+$`)

// minKeyHex is the fewest hex digits (128 bits) serve accepts in a key of
// its file: a key is all that stands between a local process and the
// cluster's sandboxes.
const minKeyHex = 32

// NewAPIKey mints a key the SDK accepts: e2b_ and 32 random hex digits.
func NewAPIKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return "e2b_" + hex.EncodeToString(b)
}

// ReadAPIKeys reads keys one a line; blank lines and lines starting with #
// are skipped. Each must have the SDK's shape and at least 128 bits.
func ReadAPIKeys(r io.Reader) ([]string, error) {
	var keys []string
	s := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for n := 1; s.Scan(); n++ {
		k := strings.TrimSpace(s.Text())
		if k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if !apiKeyPattern.MatchString(k) || len(k)-len("e2b_") < minKeyHex {
			return nil, fmt.Errorf("line %d is not an API key: each is e2b_ and at least %d lower-case hex digits (the e2b SDK refuses others), e.g. e2b_%s", n, minKeyHex, strings.Repeat("0", minKeyHex))
		}
		keys = append(keys, k)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no API key in it: write one e2b_<hex> key a line")
	}
	return keys, nil
}

// keyring checks API keys and makes and checks sandboxes' envd access
// tokens. A token is derived, never stored: HMAC-SHA256 under a secret
// derived from the keys, of the sandbox's identity (namespace, name and
// the UID of what holds its files), so it survives a restart of serve with
// the same keys, is worthless for a new sandbox of the same name, and
// nothing of it is written into the cluster.
type keyring struct {
	keys   [][]byte
	secret []byte
}

func newKeyring(keys []string) *keyring {
	k := &keyring{}
	h := sha256.New()
	h.Write([]byte("agentkernel serve envd access tokens\n"))
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	for _, key := range sorted {
		k.keys = append(k.keys, []byte(key))
		h.Write([]byte(key + "\n"))
	}
	k.secret = h.Sum(nil)
	return k
}

// validKey compares in constant time against every key, so neither which
// key nor how much of one matched shows in the time taken.
func (k *keyring) validKey(key string) bool {
	ok := 0
	for _, want := range k.keys {
		ok |= subtle.ConstantTimeCompare([]byte(key), want)
	}
	return ok == 1
}

// token is the envd access token of the sandbox with that identity.
func (k *keyring) token(namespace, name, uid string) string {
	m := hmac.New(sha256.New, k.secret)
	fmt.Fprintf(m, "%s\x00%s\x00%s", namespace, name, uid)
	return hex.EncodeToString(m.Sum(nil))
}

func (k *keyring) validToken(got, namespace, name, uid string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(k.token(namespace, name, uid))) == 1
}
