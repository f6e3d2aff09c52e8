// Package cli implements the `caddy group-join` subcommands: minting
// group_join invite and access tokens in Onedata's serialized form, and
// decoding, verifying and explaining a token.
//
// The package does not import Caddy. The root package registers the
// command with Caddy's CLI and hands every argument to Run, so everything
// here is testable with plain readers and writers.
//
// Exit codes: 0 success; 1 the token does not verify or a caveat fails
// (inspect); 2 usage errors — bad flags, bad caveat text, missing key, bad
// ttl; 3 (ExitStore) the invite store refused or could not be reached
// (mint invite --register, revoke; see store.go). Neither a key nor a whole
// token ever appears in an error message.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitInvalid = 1 // the token does not verify, or a caveat fails
	ExitUsage   = 2 // bad flags or arguments, missing key
)

// DefaultKeyEnv is the environment variable holding the default key when no
// key flag is given.
const DefaultKeyEnv = "GROUP_JOIN_KEY"

// InviteStore is the part of the invite store (package store: store.Store
// satisfies it) that the store-backed subcommands need:
// `mint invite --register --uses N` and `revoke <token-id>` (store.go).
type InviteStore interface {
	Register(ctx context.Context, id string, limit int64, ttl time.Duration) error
	Revoke(ctx context.Context, id string) error
}

// Runner runs group-join subcommands. The zero value reads os.Stdin,
// writes os.Stdout/os.Stderr and uses the process environment and clock.
type Runner struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv looks up environment variables ($GROUP_JOIN_KEY, --key-env).
	// Default os.Getenv.
	Getenv func(string) string
	// ReadFile reads --key-file. Default os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Now is the clock for ttl and caveat checks. Default time.Now.
	Now func() time.Time

	// OpenStore, if set, replaces the built-in stores of the store-backed
	// subcommands (`mint invite --register`, `revoke`): it gets the --redis
	// URL, "sentinel://<master>@<sentinels>", "cluster://<nodes>", or
	// "http://<admin address>" for the admin API. Nil (normal) means
	// Caddy's admin API (--admin, default localhost:2019) or Redis
	// (--redis, --redis-sentinels, --redis-cluster).
	OpenStore func(ctx context.Context, spec string) (InviteStore, error)
}

// Run runs `caddy group-join <args…>` and returns the exit code. A nil
// getenv means os.Getenv.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	r := &Runner{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: getenv}
	return r.Run(args)
}

// Command describes one node of the command tree, for registering the
// commands with a CLI framework (the root package maps it to cobra so that
// `caddy help group-join` lists the subcommands). Running any node means
// calling Run with the node's path followed by the user's arguments.
type Command struct {
	Name        string
	Usage       string // synopsis after the command path
	Short       string
	Long        string // help text; the "Usage: …" line is made from Usage
	Subcommands []Command
}

// Tree returns the command tree; the root is "group-join".
func Tree() Command {
	return Command{
		Name:  "group-join",
		Usage: "<command> [flags]",
		Short: "Mints, inspects and revokes group_join invite and access tokens",
		Long:  topHelp,
		Subcommands: []Command{
			{
				Name:  "mint",
				Usage: "invite|access [flags]",
				Short: "Mints an invite or access token in Onedata's form",
				Long:  mintHelp,
				Subcommands: []Command{
					{Name: "invite", Usage: "[--type <invite type>] --group|--space|--harvester|--cluster|--atm-inventory <id> --inviter <user> [flags]", Short: "Mints an invite token (userJoinGroup by default)", Long: mintInviteHelp},
					{Name: "access", Usage: "--user <id> [flags]", Short: "Mints a user's access token", Long: mintAccessHelp},
				},
			},
			{Name: "inspect", Usage: "[<token>|-] [flags]", Short: "Decodes a token, prints its fields and optionally verifies it", Long: inspectHelp},
			{Name: "revoke", Usage: "<token-id>|<token> [--admin <address> | --redis <url> | --redis-sentinels <h:p,…> --redis-master <name> | --redis-cluster <h:p,…>] [--redis-prefix <p>]", Short: "Revokes a named invite in the invite store", Long: revokeHelp},
		},
	}
}

// leaf commands by path.
var leaves = map[string]func(r *Runner, args []string) int{
	"mint invite": (*Runner).mintInvite,
	"mint access": (*Runner).mintAccess,
	"inspect":     (*Runner).inspect,
	"revoke":      (*Runner).revoke,
}

// usages holds the help text of every command by path ("" is group-join
// itself, "mint invite" a leaf), built from Tree.
var usages = func() map[string]string {
	m := map[string]string{}
	var walk func(path string, c Command)
	walk = func(path string, c Command) {
		full := strings.TrimSpace("group-join " + path)
		m[path] = "Usage: caddy " + full + " " + c.Usage + "\n\n" + c.Long
		for _, s := range c.Subcommands {
			walk(strings.TrimSpace(path+" "+s.Name), s)
		}
	}
	walk("", Tree())
	return m
}()

// Run runs `caddy group-join <args…>` and returns the exit code.
func (r *Runner) Run(args []string) int {
	r.defaults()
	path := ""
	for {
		if fn, ok := leaves[path]; ok {
			return fn(r, args)
		}
		if len(args) == 0 {
			fmt.Fprint(r.Stderr, usages[path])
			return ExitUsage
		}
		a := args[0]
		switch {
		case a == "-h" || a == "--help" || a == "-help":
			fmt.Fprint(r.Stdout, usages[path])
			return ExitOK
		case a == "help" && path == "":
			// `group-join help [command…]`
			p := strings.Join(args[1:], " ")
			u, ok := usages[p]
			if !ok {
				return r.usageErr("", "unknown command %q", p)
			}
			fmt.Fprint(r.Stdout, u)
			return ExitOK
		}
		next := strings.TrimSpace(path + " " + a)
		if _, ok := usages[next]; !ok {
			if strings.HasPrefix(a, "-") {
				return r.usageErr(path, "expected a command before flags")
			}
			return r.usageErr(path, "unknown command %q", a)
		}
		path, args = next, args[1:]
	}
}

func (r *Runner) defaults() {
	if r.Stdin == nil {
		r.Stdin = os.Stdin
	}
	if r.Stdout == nil {
		r.Stdout = os.Stdout
	}
	if r.Stderr == nil {
		r.Stderr = os.Stderr
	}
	if r.Getenv == nil {
		r.Getenv = os.Getenv
	}
	if r.ReadFile == nil {
		r.ReadFile = os.ReadFile
	}
	if r.Now == nil {
		r.Now = time.Now
	}
}

// usageErr reports a usage error for the command at path and returns
// ExitUsage. Callers must never pass a key or a whole token.
func (r *Runner) usageErr(path, format string, a ...any) int {
	name := strings.TrimSpace("group-join " + path)
	fmt.Fprintf(r.Stderr, "caddy %s: %s\n", name, fmt.Sprintf(format, a...))
	fmt.Fprintf(r.Stderr, "Run 'caddy %s --help' for usage.\n", name)
	return ExitUsage
}

// fail reports a non-usage error and returns code.
func (r *Runner) fail(path string, code int, format string, a ...any) int {
	fmt.Fprintf(r.Stderr, "caddy group-join %s: %s\n", path, fmt.Sprintf(format, a...))
	return code
}

// parseFlags parses args with fs, allowing flags and positional arguments
// in any order ("--" ends the flags). It returns the positional arguments;
// done is true when the command should stop with code (help or error).
func (r *Runner) parseFlags(path string, fs *flag.FlagSet, args []string) (pos []string, code int, done bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(r.Stdout, usages[path])
			return nil, ExitOK, true
		}
		if err != nil {
			// The flag package quotes bad values; no flag whose value is a
			// secret can fail to parse (see keyFlags and genKeyFlag).
			return nil, r.usageErr(path, "%v", err), true
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), 0, false
		}
		if len(rest) == 0 {
			return pos, 0, false
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag collects comma-separated values; the flag may be repeated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return errors.New("empty list item")
		}
		*l = append(*l, item)
	}
	return nil
}

// multiFlag collects every value of a repeated flag verbatim.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, "; ") }

func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// flagWasSet reports whether the named flag appeared on the command line.
func flagWasSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
