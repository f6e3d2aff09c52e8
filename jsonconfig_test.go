package groupjoin

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// The same configuration written as raw JSON (what `caddy run --config
// x.json` and the admin API take) and as a Caddyfile.
const jsonConfigTemplate = `{
	"admin": {"disabled": true, "config": {"persist": false}},
	"logging": {"logs": {"default": {"writer": {"output": "discard"}}}},
	"apps": {"http": {"http_port": PORT, "servers": {"gj": {
		"listen": [":PORT"],
		"automatic_https": {"disable": true},
		"routes": [{
			"match": [{"path": ["/user/groups/join"]}],
			"handle": [
				{
					"handler": "group_join",
					"keys": [
						{"secret": "SECRET"},
						{"generation": 4, "secret": "gen-four-secret"}
					],
					"identity": [
						{"source": "access_token"},
						{"source": "placeholder", "placeholder": "{http.request.header.X-Remote-User}"}
					],
					"service": "ozw-test1",
					"max_body": 1024,
					"location_prefix": "/api/v3/onezone/user/groups/",
					"upstream_headers": false
				},
				{"handler": "reverse_proxy", "upstreams": [{"dial": "BACKEND"}]}
			]
		}]
	}}}}
}`

const caddyfileTemplate = `{
	admin off
	auto_https off
	persist_config off
	http_port PORT
	log {
		output discard
	}
}
:PORT {
	group_join /user/groups/join {
		key SECRET
		key 4 gen-four-secret
		identity access_token
		# In production a forward_auth copy_headers header; a test
		# stand-in here.
		identity placeholder {http.request.header.X-Remote-User}
		service ozw-test1
		max_body 1KiB
		location_prefix /api/v3/onezone/user/groups/
		upstream_headers off
	}
	reverse_proxy /user/groups/join BACKEND
}
`

// jsonOutcome is what a client and the backend observed for one request.
type jsonOutcome struct {
	status                       int
	body, location, authenticate string
	backendSaw                   int
	backendUser                  string
}

func (o jsonOutcome) String() string {
	return fmt.Sprintf("%d %q Location=%q WWW-Authenticate=%q backend=%d X-User-Id=%q",
		o.status, o.body, o.location, o.authenticate, o.backendSaw, o.backendUser)
}

func TestJSONConfigMatchesCaddyfile(t *testing.T) {
	b := newBackend(t)
	port := testcaddy.FreePort(t)
	fill := func(tmpl string) string {
		return strings.NewReplacer("PORT", itoa(port), "SECRET", testSecret, "BACKEND", b.addr()).Replace(tmpl)
	}
	s := &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), port: port, backend: b,
		client: testcaddy.Client(10 * time.Second)}

	exp := tokens.TimeCaveat(time.Now().Add(time.Hour))
	user := access(t, "alice", "service = ozw-test1", exp)
	wrongService := access(t, "alice", "service = ozw-onezone")
	tmp4 := mintT(t, "gen-four-secret", tokens.InviteID(tokens.Persistence{Generation: 4}, "bob", "g-tmp", "t4"))
	tmp3 := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Generation: 3}, "bob", "g-tmp", "t3"))
	named := invite(t, "g-named")

	type request struct {
		name, method, body string
		headers            []string
		want               jsonOutcome
	}
	requests := []request{
		{"generation-key invite, access token", "POST", joinBody(tmp4), []string{"X-Auth-Token", user, "X-User-Id", "mallory"},
			jsonOutcome{status: 201, location: "/api/v3/onezone/user/groups/g-tmp", backendSaw: 1}},
		{"default-key invite, placeholder identity", "POST", joinBody(named), []string{"X-Remote-User", "carol"},
			jsonOutcome{status: 201, location: "/api/v3/onezone/user/groups/g-named", backendSaw: 1}},
		{"access token for another service", "POST", joinBody(named), []string{"X-Auth-Token", wrongService},
			jsonOutcome{status: 401, body: `{"error":"invalid_token","error_description":"Provided access token could not be validated."}`,
				authenticate: `Bearer error="invalid_token"`}},
		{"generation below the lowest key is revoked", "POST", joinBody(tmp3), []string{"X-Auth-Token", user},
			jsonOutcome{status: 400, body: `{"error":"invalid_token","error_description":"Invite token has been revoked."}`}},
		{"body over max_body", "POST", `{"token":"` + named + `","pad":"` + strings.Repeat("x", 1024) + `"}`, []string{"X-Auth-Token", user},
			jsonOutcome{status: 400, body: `{"error":"invalid_request","error_description":"Request body is too large."}`}},
		{"no credentials", "POST", joinBody(named), nil,
			jsonOutcome{status: 401, body: `{"error":"unauthorized","error_description":"Authentication required."}`, authenticate: "Bearer"}},
		{"GET", "GET", "", []string{"X-Auth-Token", user},
			jsonOutcome{status: 405, body: `{"error":"method_not_allowed","error_description":"Only POST is allowed."}`}},
	}

	run := func(form string) []jsonOutcome {
		var got []jsonOutcome
		for _, r := range requests {
			b.reset()
			resp := s.do(r.method, "/user/groups/join", r.body, append([]string{"Content-Type", "application/json"}, r.headers...)...)
			o := jsonOutcome{status: resp.StatusCode, body: bodyOf(resp), location: resp.Header.Get("Location"),
				authenticate: resp.Header.Get("WWW-Authenticate")}
			reqs := b.requests()
			o.backendSaw = len(reqs)
			if len(reqs) == 1 {
				o.backendUser = reqs[0].header.Get("X-User-Id")
				if string(reqs[0].body) != r.body {
					t.Errorf("%s: %s: body not forwarded as is", form, r.name)
				}
			}
			if o != r.want {
				t.Errorf("%s: %s:\n got  %v\n want %v", form, r.name, o, r.want)
			}
			got = append(got, o)
		}
		return got
	}

	testcaddy.Load(t, []byte(fill(jsonConfigTemplate)))
	fromJSON := run("JSON")
	testcaddy.LoadCaddyfile(t, fill(caddyfileTemplate))
	fromCaddyfile := run("Caddyfile")
	for i := range requests {
		if fromJSON[i] != fromCaddyfile[i] {
			t.Errorf("%s: JSON %v, Caddyfile %v", requests[i].name, fromJSON[i], fromCaddyfile[i])
		}
	}
}
