package groupjoin

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
)

// routesOf adapts a site body and returns, per handler name, the path
// matcher of its route and the handler's JSON.
func routesOf(t *testing.T, site string) map[string]struct {
	paths   []string
	handler map[string]any
} {
	t.Helper()
	cfg := testcaddy.Adapt(t, ":8080 {\n"+site+"\n}\n")
	var doc struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Match  []map[string]json.RawMessage `json:"match"`
						Handle []map[string]any             `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]struct {
		paths   []string
		handler map[string]any
	}{}
	for _, srv := range doc.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			var paths []string
			if len(r.Match) > 0 {
				_ = json.Unmarshal(r.Match[0]["path"], &paths)
			}
			for _, h := range r.Handle {
				name, _ := h["handler"].(string)
				out[name] = struct {
					paths   []string
					handler map[string]any
				}{paths, h}
			}
		}
	}
	return out
}

func TestPreviewCaddyfile(t *testing.T) {
	cases := []struct {
		name, site string
		paths      string // group_join's path matcher
		preview    string // its "preview" JSON
	}{
		{"off: the matcher as written", "group_join /user/groups/join {\n key s\n}",
			"/user/groups/join", "null"},
		{"default paths join the matcher", "group_join /user/groups/join {\n key s\n preview\n}",
			"/user/groups/join /tokens/examine /tokens/verify_invite_token", "{}"},
		{"custom paths", "group_join /user/groups/join {\n key s\n preview /api/examine /api/verify\n}",
			"/user/groups/join /api/examine /api/verify", `{"examine_path":"/api/examine","verify_path":"/api/verify"}`},
		{"no matcher matches everything already", "group_join {\n key s\n preview\n}",
			"", "{}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := routesOf(t, c.site)["group_join"]
			if got := strings.Join(r.paths, " "); got != c.paths {
				t.Errorf("paths %q, want %q", got, c.paths)
			}
			if got := formatAny(r.handler["preview"]); got != c.preview {
				t.Errorf("preview %s, want %s", got, c.preview)
			}
		})
	}
}

// A named matcher shared with another directive is extended for
// group_join only.
func TestPreviewCaddyfileSharedMatcher(t *testing.T) {
	routes := routesOf(t, "@gj path /join\ngroup_join @gj {\n key s\n preview\n}\nrespond @gj 204")
	if got := strings.Join(routes["group_join"].paths, " "); got != "/join /tokens/examine /tokens/verify_invite_token" {
		t.Errorf("group_join paths %q", got)
	}
	if got := strings.Join(routes["static_response"].paths, " "); got != "/join" {
		t.Errorf("respond paths %q: the shared matcher was changed", got)
	}
}

func TestPreviewCaddyfileErrors(t *testing.T) {
	for _, opt := range []string{"preview /only-one", "preview a b", "preview /x /X", "preview /a /b /c"} {
		cf := ":8080 {\n group_join /user/groups/join {\n  key s\n  " + opt + "\n }\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
		if err == nil || !strings.Contains(err.Error(), "Caddyfile:4") {
			t.Errorf("%q: error %v, want one naming Caddyfile:4", opt, err)
		}
	}
}

func formatAny(v any) string {
	b, _ := json.Marshal(v) // map keys sorted
	return string(b)
}
