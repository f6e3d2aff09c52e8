package groupjoin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func cfGen(n uint64) *uint64 { return &n }
func cfBool(b bool) *bool    { return &b }

// TestUnmarshalCaddyfile checks that every option of the grammar lands in
// the exact Handler field, and nothing else is set.
func TestUnmarshalCaddyfile(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  Handler
	}{
		{"one default key", `group_join {
			key s3cret
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "s3cret"}}}}},
		{"placeholder secret kept verbatim", `group_join {
			key {env.GROUP_JOIN_KEY}
			key 2 {file./run/secrets/gen2}
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "{env.GROUP_JOIN_KEY}"}, {Generation: cfGen(2), Secret: "{file./run/secrets/gen2}"}}}}},
		{"a numeric secret alone is a default key", `group_join {
			key 12345
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "12345"}}}}},
		{"keys repeat in order, generation 0 included", `group_join {
			key 7 gen-seven
			key default-one
			key 0 gen-zero
		}`, Handler{Shared: Shared{Keys: []Key{{Generation: cfGen(7), Secret: "gen-seven"}, {Secret: "default-one"}, {Generation: cfGen(0), Secret: "gen-zero"}}}}},
		{"identity sources in order", `group_join {
			key k
			identity placeholder {http.auth.user.id}
			identity access_token
			identity placeholder {http.request.header.X-Remote-User}
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, Identity: []IdentitySource{
			{Source: "placeholder", Placeholder: "{http.auth.user.id}"},
			{Source: "access_token"},
			{Source: "placeholder", Placeholder: "{http.request.header.X-Remote-User}"},
		}}}},
		{"every scalar option", `group_join {
			key k
			service ozw-abc123
			geoip_db /var/lib/GeoLite2-Country.mmdb
			asn_db /var/lib/GeoLite2-ASN.mmdb
			max_body 64KiB
			location_prefix https://onezone.example.com/api/v3/onezone/user/groups/
			upstream_headers off
		}`, Handler{LocationPrefix: "https://onezone.example.com/api/v3/onezone/user/groups/", Shared: Shared{Keys: []Key{{Secret: "k"}}, Service: "ozw-abc123", GeoIPDB: "/var/lib/GeoLite2-Country.mmdb", ASNDB: "/var/lib/GeoLite2-ASN.mmdb", MaxBody: 65536, UpstreamHeaders: cfBool(false)}}},
		{"max_body 1MB is decimal", `group_join {
			key k
			max_body 1MB
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, MaxBody: 1000000}}},
		{"max_body 1MiB is binary", `group_join {
			key k
			max_body 1MiB
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, MaxBody: 1 << 20}}},
		{"max_body in plain bytes", `group_join {
			key k
			max_body 512
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, MaxBody: 512}}},
		{"upstream_headers on", `group_join {
			key k
			upstream_headers on
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, UpstreamHeaders: cfBool(true)}}},
		{"store memory", `group_join {
			key k
			store memory
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, Store: &StoreConfig{Type: "memory"}}}},
		{"store memory with reservation_ttl", `group_join {
			key k
			store memory {
				reservation_ttl 30s
			}
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, Store: &StoreConfig{Type: "memory", ReservationTTL: caddy.Duration(30 * time.Second)}}}},
		{"store redis, URL only", `group_join {
			key k
			store redis {env.REDIS_URL}
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, Store: &StoreConfig{Type: "redis", URL: "{env.REDIS_URL}"}}}},
		{"store redis with every block option, options after it still parsed", `group_join {
			key k
			store redis redis://10.0.0.7:6379/2 {
				password {env.REDIS_PASSWORD}
				key_prefix gj:prod:
				timeout 250ms
				reservation_ttl 2m
				tls
			}
			service ozw-after
		}`, Handler{Shared: Shared{Keys: []Key{{Secret: "k"}}, Service: "ozw-after", Store: &StoreConfig{
			Type: "redis", URL: "redis://10.0.0.7:6379/2", Password: "{env.REDIS_PASSWORD}", KeyPrefix: "gj:prod:",
			Timeout: caddy.Duration(250 * time.Millisecond), ReservationTTL: caddy.Duration(2 * time.Minute), TLS: true}}}},
		{"the whole grammar at once", `group_join {
			key {env.GROUP_JOIN_KEY}
			key 3 {env.GROUP_JOIN_KEY_3}
			identity access_token
			identity placeholder {http.auth.user.id}
			service ozw-onezone
			geoip_db /geo/country.mmdb
			asn_db /geo/asn.mmdb
			max_body 16KiB
			location_prefix /api/v3/onezone/user/groups/
			upstream_headers on
			store memory
		}`, Handler{LocationPrefix: "/api/v3/onezone/user/groups/", Shared: Shared{Keys: []Key{{Secret: "{env.GROUP_JOIN_KEY}"}, {Generation: cfGen(3), Secret: "{env.GROUP_JOIN_KEY_3}"}}, Identity: []IdentitySource{{Source: "access_token"}, {Source: "placeholder", Placeholder: "{http.auth.user.id}"}}, Service: "ozw-onezone", GeoIPDB: "/geo/country.mmdb", ASNDB: "/geo/asn.mmdb", MaxBody: 16 << 10, UpstreamHeaders: cfBool(true), Store: &StoreConfig{Type: "memory"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input)); err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(h, c.want) {
				t.Fatalf("got  %s\nwant %s", dumpHandler(h), dumpHandler(c.want))
			}
		})
	}
}

// dumpHandler prints a Handler's configuration (pointers dereferenced).
func dumpHandler(h Handler) string {
	b, err := json.Marshal(h)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// TestUnmarshalCaddyfileErrors checks that each mistake is refused with a
// message naming the option or value at fault and the file and line.
func TestUnmarshalCaddyfileErrors(t *testing.T) {
	cases := []struct {
		name  string
		input string
		line  int
		want  []string
	}{
		{"shared option without a key", "group_join {\n service ozw-x\n}", 3, []string{"shared options without keys", "global group_join option"}},
		{"unknown serve", "group_join joinEverything", 1, []string{`serve "joinEverything"`, "groupJoinGroup", "verify"}},
		{"serve an invite that no join consumes", "group_join supportSpace", 1, []string{`serve "supportSpace"`, "another body"}},
		{"two serve arguments", "group_join groupJoinGroup userJoinSpace", 1, []string{"wrong argument count", "'userJoinSpace'"}},
		{"preview option", "group_join {\n key k\n preview\n}", 3, []string{"preview option is gone", "group_join /tokens/examine examine", "global option block"}},
		{"entity twice", "group_join groupJoinGroup {\n entity {a}\n entity {b}\n}", 3, []string{"entity given twice (first at line 2)"}},
		{"key without arguments", "group_join {\n key\n}", 2, []string{"key takes [<generation>] <secret>"}},
		{"key with three arguments", "group_join {\n key 1 secret extra\n}", 2, []string{"key takes [<generation>] <secret>"}},
		{"non-numeric generation", "group_join {\n key three secret\n}", 2, []string{"key generation must be a whole number", `"three"`}},
		{"negative generation", "group_join {\n key -1 secret\n}", 2, []string{"key generation must be a whole number", `"-1"`}},
		{"unknown option", "group_join {\n key k\n keys k2\n}", 3, []string{`unknown group_join option "keys"`}},
		{"unknown identity source", "group_join {\n key k\n identity jwt\n}", 3, []string{`unknown identity source "jwt"`, "access_token or placeholder"}},
		{"identity without source", "group_join {\n key k\n identity\n}", 3, []string{"wrong argument count", "'identity'"}},
		{"placeholder missing", "group_join {\n key k\n identity placeholder\n}", 3, []string{"identity placeholder needs a placeholder", "{http.auth.user.id}"}},
		{"identity with extra argument", "group_join {\n key k\n identity access_token bearer\n}", 3, []string{"wrong argument count", "'bearer'"}},
		{"placeholder identity with extra argument", "group_join {\n key k\n identity placeholder {a} {b}\n}", 3, []string{"wrong argument count", "'{b}'"}},
		{"service without value", "group_join {\n key k\n service\n}", 3, []string{"wrong argument count", "'service'"}},
		{"service with two values", "group_join {\n key k\n service ozw-a ozw-b\n}", 3, []string{"wrong argument count"}},
		{"geoip_db without path", "group_join {\n key k\n geoip_db\n}", 3, []string{"wrong argument count", "'geoip_db'"}},
		{"asn_db with two paths", "group_join {\n key k\n asn_db /a /b\n}", 3, []string{"wrong argument count"}},
		{"location_prefix without value", "group_join {\n key k\n location_prefix\n}", 3, []string{"wrong argument count", "'location_prefix'"}},
		{"bad size", "group_join {\n key k\n max_body lots\n}", 3, []string{"max_body", `"lots"`, "not a size"}},
		{"zero size", "group_join {\n key k\n max_body 0\n}", 3, []string{"max_body", `"0"`}},
		{"size too large", "group_join {\n key k\n max_body 2GiB\n}", 3, []string{"max_body", `"2GiB"`, "1GiB"}},
		{"negative size", "group_join {\n key k\n max_body -5\n}", 3, []string{"max_body", `"-5"`}},
		{"max_body without value", "group_join {\n key k\n max_body\n}", 3, []string{"wrong argument count"}},
		{"upstream_headers maybe", "group_join {\n key k\n upstream_headers maybe\n}", 3, []string{`upstream_headers must be on or off, got "maybe"`}},
		{"upstream_headers without value", "group_join {\n key k\n upstream_headers\n}", 3, []string{"wrong argument count"}},
		{"store without type", "group_join {\n key k\n store\n}", 3, []string{"store needs a type: memory or redis <url>"}},
		{"store unknown type", "group_join {\n key k\n store sqlite /tmp/x.db\n}", 3, []string{`unknown store type "sqlite"`, "memory or redis"}},
		{"store redis without URL", "group_join {\n key k\n store redis\n}", 3, []string{"store redis needs a URL"}},
		{"store redis without URL but a block", "group_join {\n key k\n store redis {\n  tls\n }\n}", 3, []string{"store redis needs a URL"}},
		{"store memory with an argument", "group_join {\n key k\n store memory 10\n}", 3, []string{"wrong argument count", "'10'"}},
		{"store redis with two URLs", "group_join {\n key k\n store redis redis://a redis://b\n}", 3, []string{"wrong argument count"}},
		{"memory with password", "group_join {\n key k\n store memory {\n  password p\n }\n}", 5, []string{"store memory only takes reservation_ttl"}},
		{"memory with key_prefix", "group_join {\n key k\n store memory {\n  key_prefix x:\n }\n}", 5, []string{"store memory only takes reservation_ttl"}},
		{"memory with timeout", "group_join {\n key k\n store memory {\n  timeout 1s\n }\n}", 5, []string{"store memory only takes reservation_ttl"}},
		{"memory with tls", "group_join {\n key k\n store memory {\n  tls\n }\n}", 5, []string{"store memory only takes reservation_ttl"}},
		{"unknown store option", "group_join {\n key k\n store redis redis://a {\n  db 3\n }\n}", 4, []string{`unknown store option "db"`}},
		{"store option without value", "group_join {\n key k\n store redis redis://a {\n  password\n }\n}", 4, []string{"wrong argument count", "'password'"}},
		{"bad timeout", "group_join {\n key k\n store redis redis://a {\n  timeout soon\n }\n}", 4, []string{"timeout", `"soon"`, "not a positive duration"}},
		{"zero reservation_ttl", "group_join {\n key k\n store redis redis://a {\n  reservation_ttl 0s\n }\n}", 4, []string{"reservation_ttl", `"0s"`, "not a positive duration"}},
		{"service twice", "group_join {\n key k\n service ozw-a\n service ozw-b\n}", 4, []string{"service given twice (first at line 3)"}},
		{"geoip_db twice", "group_join {\n key k\n geoip_db /a\n\n geoip_db /a\n}", 5, []string{"geoip_db given twice (first at line 3)"}},
		{"asn_db twice", "group_join {\n asn_db /a\n key k\n asn_db /b\n}", 4, []string{"asn_db given twice (first at line 2)"}},
		{"location_prefix twice", "group_join {\n key k\n location_prefix /a/\n location_prefix /b/\n}", 4, []string{"location_prefix given twice (first at line 3)"}},
		{"max_body twice", "group_join {\n key k\n max_body 1KiB\n max_body 2KiB\n}", 4, []string{"max_body given twice (first at line 3)"}},
		{"upstream_headers twice", "group_join {\n key k\n upstream_headers on\n upstream_headers off\n}", 4, []string{"upstream_headers given twice (first at line 3)"}},
		{"store twice", "group_join {\n key k\n store memory\n store redis redis://a\n}", 4, []string{"store given twice (first at line 3)"}},
		{"store twice after a block", "group_join {\n key k\n store redis redis://a {\n  tls\n }\n store memory\n}", 6, []string{"store given twice (first at line 3)"}},
		{"arguments on the directive line", "group_join extra {\n key k\n}", 1, []string{`serve "extra"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
			if err == nil {
				t.Fatalf("no error; parsed %s", dumpHandler(h))
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if at := "Testfile:" + itoa(c.line); !strings.Contains(msg, at) {
				t.Errorf("error %q does not name %s", msg, at)
			}
		})
	}
}

// TestCaddyfileErrorsNameFileAndLine adapts whole Caddyfiles, as `caddy
// run --config Caddyfile` and `caddy adapt` do, and checks that a mistake in
// the group_join block points at the file and line.
func TestCaddyfileErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, block string
		line        int
		want        string
	}{
		{"unknown option", "key k\n\t\tbogus 1", 7, `unknown group_join option "bogus"`},
		{"bad size", "key k\n\t\tmax_body huge", 7, `max_body: "huge"`},
		{"no key", "service ozw-x", 7, "shared options without keys"},
		{"preview", "key k\n\t\tpreview", 7, "preview option is gone"},
		{"bad generation", "key x y", 6, "key generation must be a whole number"},
		{"store redis without URL", "key k\n\t\tservice ozw-x\n\t\tstore redis", 8, "store redis needs a URL"},
		{"service twice", "key k\n\t\tservice ozw-a\n\t\tservice ozw-b", 8, "service given twice (first at line 7)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := "{\n\tauto_https off\n}\n:8080 {\n\tgroup_join /user/groups/join {\n\t\t" + c.block + "\n\t}\n\treverse_proxy /user/groups/join 127.0.0.1:9\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("adapted without error:\n%s", src)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not contain %q", msg, c.want)
			}
			if c.line > 0 && !strings.Contains(msg, "Caddyfile:"+itoa(c.line)) {
				t.Errorf("error %q does not name Caddyfile:%d", msg, c.line)
			}
		})
	}

	for _, c := range []struct{ name, src, want string }{
		// Extra arguments after the matcher on the directive line.
		{"directive-line argument", ":8080 {\n\tgroup_join /user/groups/join extra {\n\t\tkey k\n\t}\n}\n", `serve "extra": want one of`},
		// Syntax errors found by Caddy's parser in a group_join block.
		{"unclosed block", ":8080 {\n\tgroup_join {\n\t\tkey k\n", "unexpected EOF, at Caddyfile:3"},
		{"brace on its own line", ":8080 {\n\tgroup_join\n\t{\n\t\tkey k\n\t}\n}\n", "Unexpected '{' on a new line; did you mean to place the '{' on the previous line?, at Caddyfile:3"},
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(c.src), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

// adaptStrict adapts a Caddyfile and fails on errors and on any warning
// other than formatting.
func adaptStrict(t *testing.T, src string) []byte {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	for _, w := range warnings {
		if !strings.Contains(w.Message, "not formatted") {
			t.Errorf("adapt warning: %s", w.String())
		}
	}
	return out
}

func indentJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

// The documented example site, with a generation key, a placeholder identity and a
// memory store, adapts to exactly this JSON: group_join and reverse_proxy
// share the path's route, group_join first, with no `order` option.
const documentedSite = `example.com {
	group_join /user/groups/join {
		key {env.GROUP_JOIN_KEY}
		key 3 {env.GROUP_JOIN_KEY_3}
		identity access_token
		identity placeholder {http.auth.user.id}
		store memory
	}
	reverse_proxy /user/groups/join membership:8080
}
`

const documentedSiteJSON = `{
  "apps": {
    "http": {
      "servers": {
        "srv0": {
          "listen": [":443"],
          "routes": [
            {
              "match": [{"host": ["example.com"]}],
              "handle": [
                {
                  "handler": "subroute",
                  "routes": [
                    {
                      "match": [{"path": ["/user/groups/join"]}],
                      "handle": [
                        {
                          "handler": "group_join",
                          "keys": [
                            {"secret": "{env.GROUP_JOIN_KEY}"},
                            {"generation": 3, "secret": "{env.GROUP_JOIN_KEY_3}"}
                          ],
                          "identity": [
                            {"source": "access_token"},
                            {"source": "placeholder", "placeholder": "{http.auth.user.id}"}
                          ],
                          "store": {"type": "memory"}
                        },
                        {
                          "handler": "reverse_proxy",
                          "upstreams": [{"dial": "membership:8080"}]
                        }
                      ]
                    }
                  ]
                }
              ],
              "terminal": true
            }
          ]
        }
      }
    }
  }
}`

func TestAdaptDocumentedSite(t *testing.T) {
	got := adaptStrict(t, documentedSite)
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(documentedSiteJSON), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("adapted JSON differs.\ngot:\n%s\nwant:\n%s", indentJSON(got), documentedSiteJSON)
	}
	// {env.X} is resolved at provision, never at adapt time: the secret
	// never lands in the JSON config (which the admin API would serve).
	t.Setenv("GROUP_JOIN_KEY", "must-not-appear-in-json")
	if out := adaptStrict(t, documentedSite); bytes.Contains(out, []byte("must-not-appear-in-json")) {
		t.Fatalf("{env.X} resolved at adapt time:\n%s", out)
	}

	// The JSON the adapter wrote decodes to the same Handler as the
	// Caddyfile block does.
	var fromCaddyfile Handler
	block := documentedSite[strings.Index(documentedSite, "group_join"):strings.Index(documentedSite, "\treverse_proxy")]
	block = strings.Replace(block, "/user/groups/join ", "", 1) // the matcher is the Helper's business
	if err := fromCaddyfile.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
		t.Fatal(err)
	}
	raw := handlerJSON(t, got, "group_join")
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "handler")
	rest, _ := json.Marshal(m)
	var fromJSON Handler
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromCaddyfile) {
		t.Fatalf("JSON config %s\ndecodes to %s\nCaddyfile gives %s", raw, dumpHandler(fromJSON), dumpHandler(fromCaddyfile))
	}
}

// flatHandler is one handler of the adapted site, in execution order.
type flatHandler struct {
	name string // handler name
	dial string // first upstream of a reverse_proxy
	raw  json.RawMessage
}

// siteHandlers flattens the handlers of every route of every subroute of
// srv0, in the order Caddy runs them.
func siteHandlers(t *testing.T, cfg []byte) []flatHandler {
	t.Helper()
	var c struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []adaptRoute `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	srv, ok := c.Apps.HTTP.Servers["srv0"]
	if !ok {
		t.Fatalf("no srv0 in %s", cfg)
	}
	var out []flatHandler
	var walk func(routes []adaptRoute)
	walk = func(routes []adaptRoute) {
		for _, r := range routes {
			for _, raw := range r.Handle {
				var h struct {
					Handler   string       `json:"handler"`
					Routes    []adaptRoute `json:"routes"`
					Upstreams []struct {
						Dial string `json:"dial"`
					} `json:"upstreams"`
				}
				if err := json.Unmarshal(raw, &h); err != nil {
					t.Fatal(err)
				}
				if h.Handler == "subroute" {
					walk(h.Routes)
					continue
				}
				f := flatHandler{name: h.Handler, raw: raw}
				if len(h.Upstreams) > 0 {
					f.dial = h.Upstreams[0].Dial
				}
				out = append(out, f)
			}
		}
	}
	walk(srv.Routes)
	return out
}

type adaptRoute struct {
	Handle []json.RawMessage `json:"handle"`
}

// handlerJSON returns the raw JSON of the only handler with this name.
func handlerJSON(t *testing.T, cfg []byte, name string) json.RawMessage {
	t.Helper()
	var found []json.RawMessage
	for _, h := range siteHandlers(t, cfg) {
		if h.name == name {
			found = append(found, h.raw)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s handlers in\n%s", len(found), name, indentJSON(cfg))
	}
	return found[0]
}

// TestAdaptDirectiveOrder writes the directives in the wrong textual order;
// the registered order puts group_join after basic_auth and forward_auth
// (so their identity is available) and before reverse_proxy, with no
// `order` global option.
func TestAdaptDirectiveOrder(t *testing.T) {
	src := `{
	auto_https off
}
:8080 {
	reverse_proxy /user/groups/join membership:8080
	group_join /user/groups/join {
		key {env.GROUP_JOIN_KEY}
		identity placeholder {http.auth.user.id}
		identity placeholder {http.request.header.Remote-User}
	}
	forward_auth /user/groups/join authelia:9091 {
		uri /api/verify
		copy_headers Remote-User
	}
	basic_auth /user/groups/join {
		carol $2a$04$abcdefghijklmnopqrstuu5Yx0ZcQJ8B1XhJOB7hHDv3Z6KjXG7Ue
	}
}
`
	if strings.Contains(src, "order ") {
		t.Fatal("the test must not use an order option")
	}
	hs := siteHandlers(t, adaptStrict(t, src))
	index := func(name, dial string) int {
		t.Helper()
		at := -1
		for i, h := range hs {
			if h.name == name && (dial == "" || h.dial == dial) {
				if at >= 0 {
					t.Fatalf("%s %s appears twice", name, dial)
				}
				at = i
			}
		}
		if at < 0 {
			t.Fatalf("no %s %s handler in %+v", name, dial, hs)
		}
		return at
	}
	basic := index("authentication", "")
	forward := index("reverse_proxy", "authelia:9091")
	gj := index("group_join", "")
	proxy := index("reverse_proxy", "membership:8080")
	if !(basic < gj && forward < gj && gj < proxy) {
		var names []string
		for _, h := range hs {
			names = append(names, h.name+"("+h.dial+")")
		}
		t.Fatalf("handler order %v: want basic_auth and forward_auth before group_join before reverse_proxy", names)
	}
}

// The global group_join option becomes the group_join app; each
// directive becomes a handler with its serve value and no keys, on a
// route whose matcher is the one written (never extended).
func TestRoutesCaddyfile(t *testing.T) {
	src := "{\n\tgroup_join {\n\t\tkey {env.K}\n\t\tstore memory\n\t\tmax_body 8KiB\n\t\terror_model onezone\n\t}\n}\n" +
		":8080 {\n" +
		"\t@gj path /user/groups/join\n" +
		"\tgroup_join @gj\n" +
		"\tgroup_join /groups/*/parents/join groupJoinGroup\n" +
		"\tgroup_join /spaces/*/harvesters/join spaceJoinHarvester {\n\t\tlocation_prefix /api/spaces/{http.request.uri.path.1}/harvesters/\n\t}\n" +
		"\tgroup_join /tokens/examine examine\n" +
		"\tgroup_join /tokens/verify_invite_token verify\n" +
		"\trespond @gj 204\n" +
		"}\n"
	out := adaptStrict(t, src)
	var doc struct {
		Apps struct {
			GroupJoin map[string]any `json:"group_join"`
			HTTP      struct {
				Servers map[string]struct {
					Routes []struct {
						Match  []map[string]json.RawMessage `json:"match"`
						Handle []map[string]any             `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if got := formatAny(doc.Apps.GroupJoin); got != `{"error_model":"onezone","keys":[{"secret":"{env.K}"}],"max_body":8192,"store":{"type":"memory"}}` {
		t.Errorf("group_join app %s", got)
	}
	var got []string
	for _, srv := range doc.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			var paths []string
			if len(r.Match) > 0 {
				_ = json.Unmarshal(r.Match[0]["path"], &paths)
			}
			for _, h := range r.Handle {
				got = append(got, strings.Join(paths, " ")+" "+formatAny(h))
			}
		}
	}
	want := []string{
		`/user/groups/join {"handler":"group_join"}`,
		`/groups/*/parents/join {"handler":"group_join","serve":"groupJoinGroup"}`,
		`/spaces/*/harvesters/join {"handler":"group_join","location_prefix":"/api/spaces/{http.request.uri.path.1}/harvesters/","serve":"spaceJoinHarvester"}`,
		`/tokens/examine {"handler":"group_join","serve":"examine"}`,
		`/tokens/verify_invite_token {"handler":"group_join","serve":"verify"}`,
		`/user/groups/join {"handler":"static_response","status_code":204}`,
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Mistakes in the global option name the file and line.
func TestGlobalOptionErrors(t *testing.T) {
	for _, c := range []struct{ block, want string }{
		{"\t\tservice ozw-x", "global group_join option needs at least one key"},
		{"\t\tkey k\n\t\tbogus 1", `unknown global group_join option "bogus"`},
		{"\t\tkey k\n\t\tentity {a}", "entity is an option of each group_join handler"},
		{"\t\tkey k\n\t\tmax_body 1KiB\n\t\tmax_body 2KiB", "max_body given twice (first at line 4)"},
		{"\t\tkey k\n\t\terror_model json", `error_model must be documented or onezone, got "json"`},
		{"\t\tkey k\n\t\terror_model", "wrong argument count"},
	} {
		src := "{\n\tgroup_join {\n" + c.block + "\n\t}\n}\n:8080 {\n\tgroup_join\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "Caddyfile:") {
			t.Errorf("%q: error %v, want it to contain %q and the file", c.block, err, c.want)
		}
	}
}

func formatAny(v any) string {
	b, _ := json.Marshal(v) // map keys sorted
	return string(b)
}

func parseStore(t *testing.T, src string) (*StoreConfig, error) {
	t.Helper()
	d := caddyfile.NewTestDispenser(src)
	d.Next() // "store"
	return unmarshalStore(d)
}

func TestUnmarshalStoreHA(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      StoreConfig
	}{
		{"sentinel", `store redis {
			sentinels 10.0.0.1:26379 10.0.0.2:26379 {env.S3}
			master mymaster
			sentinel_password {env.SP}
			db 2
			password {env.P}
			key_prefix gj:
			timeout 2s
			reservation_ttl 30s
			tls
			min_replicas 1 250ms
		}`, StoreConfig{Type: "redis", Sentinels: []string{"10.0.0.1:26379", "10.0.0.2:26379", "{env.S3}"}, Master: "mymaster",
			SentinelPassword: "{env.SP}", DB: 2, Password: "{env.P}", KeyPrefix: "gj:", Timeout: caddy.Duration(2 * time.Second),
			ReservationTTL: caddy.Duration(30 * time.Second), TLS: true, MinReplicas: 1, ReplicaTimeout: caddy.Duration(250 * time.Millisecond)}},
		{"cluster", `store redis {
			cluster 10.0.0.1:7000 10.0.0.2:7000
			min_replicas 2
		}`, StoreConfig{Type: "redis", Cluster: []string{"10.0.0.1:7000", "10.0.0.2:7000"}, MinReplicas: 2}},
		{"url with min_replicas", `store redis redis://h:6379/0 {
			min_replicas 1
		}`, StoreConfig{Type: "redis", URL: "redis://h:6379/0", MinReplicas: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseStore(t, c.src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, c.want)
			}
			// JSON mirrors the Caddyfile.
			b, _ := json.Marshal(got)
			var back StoreConfig
			if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c.want) {
				t.Fatalf("JSON round trip: %s → %+v (%v)", b, back, err)
			}
		})
	}
}

func TestUnmarshalStoreHAErrors(t *testing.T) {
	for _, c := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"url and sentinels", "store redis redis://a {\n sentinels a:1\n master m\n}", 4, "exclude each other"},
		{"url and cluster", "store redis redis://a {\n cluster a:1\n}", 3, "exclude each other"},
		{"sentinels and cluster", "store redis {\n sentinels a:1\n master m\n cluster b:1\n}", 5, "exclude each other"},
		{"sentinels without master", "store redis {\n sentinels a:1\n}", 3, "sentinels need master"},
		{"master without sentinels", "store redis {\n master m\n}", 3, "master needs sentinels"},
		{"sentinel_password without sentinels", "store redis {\n cluster a:1\n sentinel_password x\n}", 4, "sentinel_password needs sentinels"},
		{"db with cluster", "store redis {\n cluster a:1\n db 1\n}", 4, "db is for sentinels"},
		{"db with url", "store redis redis://a {\n db 1\n}", 2, `unknown store option "db" with a URL`},
		{"bad db", "store redis {\n sentinels a:1\n master m\n db x\n}", 4, `db: "x"`},
		{"empty sentinels", "store redis {\n sentinels\n master m\n}", 2, "sentinels needs at least one"},
		{"empty cluster", "store redis {\n cluster\n}", 2, "cluster needs at least one"},
		{"repeated master", "store redis {\n sentinels a:1\n master m\n master n\n}", 4, `store option "master" given twice`},
		{"repeated sentinels", "store redis {\n sentinels a:1\n sentinels b:1\n master m\n}", 3, `"sentinels" given twice`},
		{"repeated password", "store redis redis://a {\n password a\n password b\n}", 3, `"password" given twice`},
		{"repeated tls", "store redis redis://a {\n tls\n tls\n}", 3, `"tls" given twice`},
		{"min_replicas zero", "store redis redis://a {\n min_replicas 0\n}", 2, "min_replicas"},
		{"min_replicas word", "store redis redis://a {\n min_replicas some\n}", 2, `"some"`},
		{"min_replicas bad timeout", "store redis redis://a {\n min_replicas 1 soon\n}", 2, `timeout "soon"`},
		{"min_replicas three args", "store redis redis://a {\n min_replicas 1 1s 2\n}", 2, "wrong argument count"},
		{"min_replicas on memory", "store memory {\n min_replicas 1\n}", 3, "store memory only takes reservation_ttl"},
		{"tls with argument", "store redis redis://a {\n tls yes\n}", 2, "wrong argument count"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseStore(t, c.src)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if at := "Testfile:" + itoa(c.line); !strings.Contains(err.Error(), at) {
				t.Errorf("error %q does not name %s", err, at)
			}
		})
	}
}
