package groupjoin

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
)

// TestCommand builds the real caddy binary (./cmd/caddy, as xcaddy would
// with this plugin) and runs `caddy group-join …` through Caddy's own CLI,
// so exit codes and output are what users get.
func TestCommand(t *testing.T) {
	if _, ok := caddycmd.Commands()["group-join"]; !ok {
		t.Fatal("group-join is not registered with caddycmd")
	}
	if testing.Short() {
		t.Skip("builds the caddy binary")
	}
	bin := testcaddy.Binary(t) // built once per test binary, shared with the fleet tests

	const key = "command-test-KEY-41c0ffee"
	type result struct {
		code           int
		stdout, stderr string
	}
	run := func(t *testing.T, env []string, stdin string, args ...string) result {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		cmd.Env = []string{"HOME=" + cmd.Dir, "PATH=" + os.Getenv("PATH")}
		cmd.Env = append(cmd.Env, env...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		res := result{0, out.String(), errb.String()}
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			res.code = exitErr.ExitCode()
		case err != nil:
			t.Fatalf("run %q: %v", args, err)
		}
		if strings.Contains(res.stdout, key) || strings.Contains(res.stderr, key) {
			t.Fatalf("%q printed the key:\nstdout: %s\nstderr: %s", args, res.stdout, res.stderr)
		}
		return res
	}
	must := func(t *testing.T, want int, env []string, stdin string, args ...string) result {
		t.Helper()
		res := run(t, env, stdin, args...)
		if res.code != want {
			t.Fatalf("caddy %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, res.code, want, res.stdout, res.stderr)
		}
		return res
	}

	t.Run("mint and inspect", func(t *testing.T) {
		res := must(t, 0, nil, "", "group-join", "mint", "invite", "--group", "cmd-group-7", "--inviter", "bob",
			"--consumer", "alice", "--ttl", "1h", "--key", key)
		tok := strings.TrimSuffix(res.stdout, "\n")
		if tok == "" || strings.ContainsAny(tok, "\n ") {
			t.Fatalf("mint printed %q, want the token on one line", res.stdout)
		}
		res = must(t, 0, nil, "", "group-join", "inspect", "--key", key, "--user", "alice", tok)
		for _, want := range []string{"cmd-group-7", "usr-bob", "signature:      valid", "result:         OK"} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("inspect output lacks %q:\n%s", want, res.stdout)
			}
		}
		// From stdin, with the key from $GROUP_JOIN_KEY, as JSON.
		res = must(t, 0, []string{"GROUP_JOIN_KEY=" + key}, tok+"\n", "group-join", "inspect", "--json", "--user", "alice")
		var rep struct {
			Valid      *bool
			Identifier struct {
				InviteTarget string `json:"invite_target"`
			}
		}
		if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || rep.Valid == nil || !*rep.Valid || rep.Identifier.InviteTarget != "cmd-group-7" {
			t.Errorf("inspect --json: %v\n%s", err, res.stdout)
		}
		// Exit 1: wrong key; consumer caveat excludes the user.
		res = must(t, 1, nil, "", "group-join", "inspect", "--key", "another-key", tok)
		if !strings.Contains(res.stdout, "signature:      invalid") {
			t.Errorf("wrong key:\n%s", res.stdout)
		}
		must(t, 1, nil, "", "group-join", "inspect", "--key", key, "--user", "mallory", tok)
		must(t, 1, nil, "", "group-join", "inspect", "not-a-token")
	})

	t.Run("access token", func(t *testing.T) {
		res := must(t, 0, []string{"K=" + key}, "", "group-join", "mint", "access", "--user", "alice", "--key-env", "K")
		tok := strings.TrimSpace(res.stdout)
		res = must(t, 0, nil, "", "group-join", "inspect", "--key", key, tok)
		if !strings.Contains(res.stdout, "usr-alice") || !strings.Contains(res.stdout, "checked as:     access") {
			t.Errorf("inspect:\n%s", res.stdout)
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, tc := range []struct {
			args  []string
			inErr string
		}{
			{[]string{"group-join", "mint", "invite", "--group", "g", "--inviter", "b"}, "no key"},
			{[]string{"group-join", "mint", "invite", "--group", "g", "--inviter", "b", "--key", key, "--ttl", "soon"}, "--ttl"},
			{[]string{"group-join", "mint", "invite", "--group", "g", "--inviter", "b", "--key", key, "--bogus"}, "-bogus"},
			{[]string{"group-join", "mint", "invite", "--group", "g", "--inviter", "b", "--key", key, "--ip", "nope"}, "--ip"},
			{[]string{"group-join", "frobnicate"}, `unknown command "frobnicate"`},
			{[]string{"group-join"}, "Usage: caddy group-join"},
		} {
			res := must(t, 2, nil, "", tc.args...)
			if !strings.Contains(res.stderr, tc.inErr) {
				t.Errorf("caddy %q: stderr lacks %q:\n%s", tc.args, tc.inErr, res.stderr)
			}
		}
	})

	t.Run("help", func(t *testing.T) {
		res := must(t, 0, nil, "", "help", "group-join")
		for _, want := range []string{"group-join", "mint", "inspect", "Available Commands"} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("caddy help group-join lacks %q:\n%s", want, res.stdout)
			}
		}
		res = must(t, 0, nil, "", "help", "group-join", "mint")
		for _, want := range []string{"invite", "access"} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("caddy help group-join mint lacks %q:\n%s", want, res.stdout)
			}
		}
		res = must(t, 0, nil, "", "help")
		if !strings.Contains(res.stdout, "group-join") {
			t.Errorf("caddy help does not list group-join:\n%s", res.stdout)
		}
		res = must(t, 0, nil, "", "group-join", "mint", "invite", "--help")
		if !strings.Contains(res.stdout, "--consumer") {
			t.Errorf("mint invite --help:\n%s", res.stdout)
		}
	})
}
