package groupjoin

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

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
