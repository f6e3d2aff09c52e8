package groupjoin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/mmdbtest"
	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// loadConfigErr loads a JSON config in the in-process Caddy and returns the
// load error. A config that loads is stopped when the test ends.
func loadConfigErr(t *testing.T, cfg []byte) error {
	t.Helper()
	testcaddy.SkipShort(t)
	err := caddy.Load(cfg, true)
	if err == nil {
		t.Cleanup(func() { _ = caddy.Stop() })
	}
	return err
}

// provisionCaddyfile is a site with group_join options; %[1]d is the port.
func provisionCaddyfile(port int, options string) string {
	return testGlobals(port, "off") + fmt.Sprintf(`:%[1]d {
	group_join /user/groups/join {
%[2]s
	}
	respond /user/groups/join 204
}
`, port, options)
}

// provisionJSON is a server whose only handler is the given group_join
// handler JSON object.
func provisionJSON(port int, handler string) []byte {
	return []byte(fmt.Sprintf(`{
	"admin": {"disabled": true, "config": {"persist": false}},
	"logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
	"apps": {"http": {"servers": {"gj": {
		"listen": [":%d"],
		"automatic_https": {"disable": true},
		"routes": [{"handle": [%s]}]
	}}}}
}`, port, handler))
}

// checkOnePrefix checks that a load error names the module once: Caddy
// writes "provision http.handlers.group_join: " or
// "http.handlers.group_join: invalid configuration: ", and the handler's
// own message follows without a second "group_join:".
func checkOnePrefix(t *testing.T, msg string) {
	t.Helper()
	const module = "http.handlers.group_join: "
	i := strings.LastIndex(msg, module)
	if i < 0 {
		if !strings.Contains(msg, "decoding module config") { // a JSON field Caddy refused before provision
			t.Errorf("error does not name %q:\n%s", module, msg)
		}
		return
	}
	own := strings.TrimPrefix(msg[i+len(module):], "invalid configuration: ")
	if strings.HasPrefix(own, "group_join") {
		t.Errorf("the handler's message repeats the module name:\n%s", msg)
	}
}

func TestProvisionErrors(t *testing.T) {
	dir := t.TempDir()
	countryDB, err := mmdbtest.WriteCountryDB(dir, map[string]string{"127.0.0.1": "PL"})
	if err != nil {
		t.Fatal(err)
	}
	notMMDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notMMDB, []byte("this is not a MaxMind database\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"GJ_TEST_UNSET_1", "GJ_TEST_UNSET_2", "GJ_TEST_UNSET_3", "GJ_TEST_UNSET_REDIS"} {
		if _, set := os.LookupEnv(v); set {
			t.Fatalf("%s must not be set for this test", v)
		}
	}
	t.Setenv("GJ_TEST_EMPTY", "")
	port := testcaddy.FreePort(t)

	cases := []struct {
		name    string
		options string
		want    []string
		never   []string // secrets that must not appear
	}{
		{"unset env key", "key {env.GJ_TEST_UNSET_1}",
			[]string{"group_join", "key #1", "{env.GJ_TEST_UNSET_1}", "cannot be resolved"}, nil},
		{"unset env generation key", "key literal-default-s3cret\n\t\tkey 2 {env.GJ_TEST_UNSET_2}",
			[]string{"group_join", "key #2 (generation 2)", "{env.GJ_TEST_UNSET_2}"}, []string{"literal-default-s3cret"}},
		{"empty env key", "key {env.GJ_TEST_EMPTY}",
			[]string{"group_join", "key #1", "empty"}, nil},
		{"missing secret file", "key {file./nonexistent/gj-secret}",
			[]string{"group_join", "key #1", "{file./nonexistent/gj-secret}"}, nil},
		{"literal secret with braces is not echoed", "key s3cr3t-head{x}s3cr3t-tail",
			[]string{"group_join", "key #1"}, []string{"s3cr3t", "{x}"}},
		{"secret mixing text and a placeholder is not echoed", "key s3cr3t-prefix-{env.GJ_TEST_UNSET_3}",
			[]string{"group_join", "key #1"}, []string{"s3cr3t", "GJ_TEST_UNSET_3"}},
		{"duplicate default key", "key first-s3cret-aaa\n\t\tkey second-s3cret-bbb",
			[]string{"group_join", "key #2", "default key given twice"}, []string{"s3cret"}},
		{"duplicate generation", "key d-s3cret\n\t\tkey 5 gen5-s3cret-aaa\n\t\tkey 5 gen5-s3cret-bbb",
			[]string{"group_join", "key #3 (generation 5)", "generation given twice"}, []string{"s3cret"}},
		{"missing geoip_db", "key k-s3cret\n\t\tgeoip_db /nonexistent/country.mmdb",
			[]string{"group_join", "country database", `"/nonexistent/country.mmdb"`, "no such file"}, []string{"k-s3cret"}},
		{"geoip_db not an mmdb", "key k\n\t\tgeoip_db " + notMMDB,
			[]string{"group_join", "country database", notMMDB, "not a valid MaxMind DB"}, nil},
		{"geoip_db is a directory", "key k\n\t\tgeoip_db " + dir,
			[]string{"group_join", "country database", `"` + dir + `"`}, nil},
		{"missing asn_db", "key k\n\t\tasn_db /nonexistent/asn.mmdb",
			[]string{"group_join", "ASN database", `"/nonexistent/asn.mmdb"`, "no such file"}, nil},
		{"asn_db not an mmdb", "key k\n\t\tgeoip_db " + countryDB + "\n\t\tasn_db " + notMMDB,
			[]string{"group_join", "ASN database", notMMDB, "not a valid MaxMind DB"}, nil},
		{"asn_db is a country database", "key k\n\t\tasn_db " + countryDB,
			[]string{"group_join", "ASN database", countryDB, "database type", "GeoIP2-Country"}, nil},
		{"relative location_prefix", "key k\n\t\tlocation_prefix groups/",
			[]string{"group_join", `location_prefix "groups/"`, "path or an absolute URL"}, nil},
		{"placeholder identity that is no placeholder", "key k\n\t\tidentity placeholder http.auth.user.id",
			[]string{"group_join", `identity #1: "http.auth.user.id" is not a placeholder`}, nil},
		{"second identity is no placeholder", "key k\n\t\tidentity access_token\n\t\tidentity placeholder user",
			[]string{"group_join", `identity #2: "user" is not a placeholder`}, nil},
		{"bad service", "key k\n\t\tservice onezone",
			[]string{"group_join", `service "onezone" must look like ozw-<id>`}, nil},
		{"redis URL from an unset variable", "key k\n\t\tstore redis {env.GJ_TEST_UNSET_REDIS}",
			[]string{"group_join", "store redis", "{env.GJ_TEST_UNSET_REDIS}"}, nil},
		{"malformed redis URL hides its password", "key k\n\t\tstore redis redis://:hunter2-pw@127.0.0.1:notaport/0",
			[]string{"group_join", "store redis", "invalid redis URL"}, []string{"hunter2"}},
		{"redis URL with a bad database hides its password", "key k\n\t\tstore redis redis://:hunter2-pw@127.0.0.1:6379/db",
			[]string{"group_join", "store redis", "invalid redis URL"}, []string{"hunter2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := loadConfigErr(t, testcaddy.Adapt(t, provisionCaddyfile(port, "\t\t"+c.options)))
			if err == nil {
				t.Fatal("config loaded")
			}
			msg := err.Error()
			checkOnePrefix(t, msg)
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			for _, s := range c.never {
				if strings.Contains(msg, s) {
					t.Errorf("error contains %q:\n%s", s, msg)
				}
			}
		})
	}

	jsonCases := []struct {
		name, handler string
		want          []string
	}{
		{"no keys", `{"handler": "group_join"}`, []string{"group_join", "no keys: configure them once in the global group_join option"}},
		{"empty key list", `{"handler": "group_join", "keys": []}`, []string{"group_join", "no keys: configure them once in the global group_join option"}},
		{"misspelt field", `{"handler": "group_join", "key": "k"}`, []string{"group_join", "unknown field", "key"}},
		{"unknown identity source", `{"handler": "group_join", "keys": [{"secret": "k"}], "identity": [{"source": "jwt"}]}`,
			[]string{"group_join", `identity #1: unknown source "jwt"`}},
		{"negative max_body", `{"handler": "group_join", "keys": [{"secret": "k"}], "max_body": -1}`,
			[]string{"group_join", "max_body must be positive"}},
		{"unknown store type", `{"handler": "group_join", "keys": [{"secret": "k"}], "store": {"type": "sqlite"}}`,
			[]string{"group_join", `unknown store type "sqlite"`}},
		// Redis-only fields would select a second memory store under the
		// admin name "memory", splitting the counts of the same invites.
		{"memory store with key_prefix", `{"handler": "group_join", "keys": [{"secret": "k"}], "store": {"type": "memory", "key_prefix": "x:"}}`,
			[]string{"group_join", "store memory only takes reservation_ttl"}},
		{"memory store with url", `{"handler": "group_join", "keys": [{"secret": "k"}], "store": {"type": "memory", "url": "redis://127.0.0.1:1"}}`,
			[]string{"group_join", "store memory only takes reservation_ttl"}},
		{"negative reservation_ttl", `{"handler": "group_join", "keys": [{"secret": "k"}], "store": {"type": "memory", "reservation_ttl": -1}}`,
			[]string{"group_join", "reservation_ttl must be positive"}},
		{"key without secret", `{"handler": "group_join", "keys": [{"generation": 1}]}`,
			[]string{"group_join", "key #1 (generation 1)", "secret is empty"}},
	}
	for _, c := range jsonCases {
		t.Run("JSON "+c.name, func(t *testing.T) {
			err := loadConfigErr(t, provisionJSON(port, c.handler))
			if err == nil {
				t.Fatal("config loaded")
			}
			checkOnePrefix(t, err.Error())
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%s", w, err)
				}
			}
		})
	}

	// A handler that provisioned its geo databases and then failed
	// validation gives its pool references back.
	t.Run("failed load releases shared state", func(t *testing.T) {
		geoRefs := func() (n int) {
			geoPool.Range(func(key, _ any) bool {
				r, _ := geoPool.References(key)
				n += r
				return true
			})
			return n
		}
		before := geoRefs()
		metricsBefore, _ := metricsPool.References(metricsKey)
		err := loadConfigErr(t, testcaddy.Adapt(t, provisionCaddyfile(port, "\t\tkey k\n\t\tgeoip_db "+countryDB+"\n\t\tlocation_prefix nope")))
		if err == nil || !strings.Contains(err.Error(), "location_prefix") {
			t.Fatalf("load error %v", err)
		}
		if after := geoRefs(); after != before {
			t.Errorf("geo pool references %d after a failed load, %d before", after, before)
		}
		if after, _ := metricsPool.References(metricsKey); after != metricsBefore {
			t.Errorf("metrics pool references %d after a failed load, %d before", after, metricsBefore)
		}
	})
}

// TestProvisionPlaceholderSecrets checks that {env.X} and {file.X}
// secrets resolve at provision (one trailing newline of a file trimmed),
// and that the process still serves after the failed loads above.
func TestProvisionPlaceholderSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gen2.key")
	if err := os.WriteFile(file, []byte("file-secret-gen2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GJ_TEST_DEFAULT_KEY", "env-secret-default")
	s := startSite(t, "key {env.GJ_TEST_DEFAULT_KEY}\n\t\tkey 2 {file."+file+"}")
	user := mintT(t, "env-secret-default", tokens.AccessID(tokens.Persistence{Named: true}, "alice", "", "a1"))
	named := mintT(t, "env-secret-default", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "i1"))
	tmp2 := mintT(t, "file-secret-gen2", tokens.InviteID(tokens.Persistence{Generation: 2}, "bob", "g2", "i2"))
	tmp2Newline := mintT(t, "file-secret-gen2\n", tokens.InviteID(tokens.Persistence{Generation: 2}, "bob", "g2", "i3"))
	literal := mintT(t, "{env.GJ_TEST_DEFAULT_KEY}", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "i4"))
	for _, c := range []struct {
		name, inv string
		status    int
	}{
		{"env default key", named, 201},
		{"file generation key", tmp2, 201},
		{"file's trailing newline is not part of the key", tmp2Newline, 400},
		{"the placeholder text is not the key", literal, 400},
	} {
		resp := s.join(joinBody(c.inv), "X-Auth-Token", user)
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, resp.StatusCode, c.status, bodyOf(resp))
		}
	}
}
