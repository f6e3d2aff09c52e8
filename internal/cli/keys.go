package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// keyFlags are the flags that name the (default) key. Precedence: --key,
// then --key-env, then --key-file, then $GROUP_JOIN_KEY. A flag that is
// given but empty (e.g. --key "$UNSET") is an error, never a silent fall
// back to the next source.
type keyFlags struct {
	key, keyEnv, keyFile setString
}

// setString is a string flag that remembers whether it was given. Its
// String never shows the value: it may be a secret.
type setString struct {
	v   string
	set bool
}

func (s *setString) String() string     { return "" }
func (s *setString) Set(v string) error { s.v, s.set = v, true; return nil }

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.Var(&k.key, "key", "")
	fs.Var(&k.keyEnv, "key-env", "")
	fs.Var(&k.keyFile, "key-file", "")
}

// errNoKey is returned by load when no key is given anywhere.
var errNoKey = errors.New("no key: use --key, --key-env <VAR>, --key-file <path> or set $" + DefaultKeyEnv)

// load returns the secret and a description of where it came from (for
// messages; never the secret). It returns errNoKey when no key is given at
// all; an explicitly named source that is empty or unreadable is a
// different error.
func (k *keyFlags) load(r *Runner) (secret []byte, from string, err error) {
	switch {
	case k.key.set:
		if k.key.v == "" {
			return nil, "", errors.New("--key is empty")
		}
		return []byte(k.key.v), "--key", nil
	case k.keyEnv.set:
		name := k.keyEnv.v
		if name == "" {
			return nil, "", errors.New("--key-env needs the name of an environment variable")
		}
		v := r.Getenv(name)
		if v == "" {
			return nil, "", fmt.Errorf("--key-env: environment variable %s is unset or empty", name)
		}
		return []byte(v), "$" + name, nil
	case k.keyFile.set:
		path := k.keyFile.v
		if path == "" {
			return nil, "", errors.New("--key-file needs a path")
		}
		b, err := r.ReadFile(path)
		if err != nil {
			return nil, "", fmt.Errorf("--key-file: %v", err)
		}
		// One trailing newline is trimmed, as Caddy's {file.*} does.
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 {
			return nil, "", fmt.Errorf("--key-file: %s is empty", path)
		}
		return b, "--key-file", nil
	}
	if v := r.Getenv(DefaultKeyEnv); v != "" {
		return []byte(v), "$" + DefaultKeyEnv, nil
	}
	return nil, "", errNoKey
}

// genKeyFlag collects --generation-key N=secret. Set never fails: the flag
// package would quote the value (the secret) in its error, so the values are
// checked later by parse, whose errors never include them.
type genKeyFlag []string

func (g *genKeyFlag) String() string { return "" }

func (g *genKeyFlag) Set(v string) error { *g = append(*g, v); return nil }

func (g genKeyFlag) parse() (map[uint64][]byte, error) {
	if len(g) == 0 {
		return nil, nil
	}
	m := make(map[uint64][]byte, len(g))
	for i, v := range g {
		n, secret, ok := strings.Cut(v, "=")
		gen, err := strconv.ParseUint(n, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("--generation-key #%d: want <generation>=<secret>, with a whole-number generation", i+1)
		}
		if secret == "" {
			return nil, fmt.Errorf("--generation-key #%d: the secret of generation %d is empty", i+1, gen)
		}
		if _, dup := m[gen]; dup {
			return nil, fmt.Errorf("--generation-key: generation %d given twice", gen)
		}
		m[gen] = []byte(secret)
	}
	return m, nil
}

// keyChoice describes which key the keyring picks for id, mirroring
// tokens.Keyring (key rotation, docs/contract.md): with no generation keys the default key
// verifies everything; otherwise tmp-N needs generation N's key, and named
// and legacy tokens use the default key.
func keyChoice(id tokens.Identifier, gens map[uint64][]byte) string {
	if id.Legacy || id.Persistence.Named || len(gens) == 0 {
		return "default key"
	}
	return fmt.Sprintf("key of generation %d", id.Persistence.Generation)
}
