package groupjoin

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Onezone's routes, written out here rather than derived from joinRoutes,
// so that a mistake in the table shows: path with {id} for the joining
// entity, and the Location of the joined one.
var onezoneRoutes = map[string][2]string{
	"userJoinGroup":         {"/user/groups/join", "/user/groups/%s"},
	"groupJoinGroup":        {"/groups/{id}/parents/join", "/groups/{id}/parents/%s"},
	"userJoinSpace":         {"/user/spaces/join", "/user/spaces/%s"},
	"groupJoinSpace":        {"/groups/{id}/spaces/join", "/groups/{id}/spaces/%s"},
	"harvesterJoinSpace":    {"/harvesters/{id}/spaces/join", "/harvesters/{id}/spaces/%s"},
	"userJoinHarvester":     {"/user/harvesters/join", "/user/harvesters/%s"},
	"groupJoinHarvester":    {"/groups/{id}/harvesters/join", "/groups/{id}/harvesters/%s"},
	"spaceJoinHarvester":    {"/spaces/{id}/harvesters/join", "/spaces/{id}/harvesters/%s"},
	"userJoinCluster":       {"/user/clusters/join", "/user/clusters/%s"},
	"groupJoinCluster":      {"/groups/{id}/clusters/join", "/groups/{id}/clusters/%s"},
	"userJoinAtmInventory":  {"/user/atm_inventories/join", "/user/atm_inventories/%s"},
	"groupJoinAtmInventory": {"/groups/{id}/atm_inventories/join", "/groups/{id}/atm_inventories/%s"},
}

func TestJoinRoutesTable(t *testing.T) {
	if len(joinRoutes) != len(onezoneRoutes) {
		t.Fatalf("%d routes, want %d", len(joinRoutes), len(onezoneRoutes))
	}
	for _, r := range joinRoutes {
		want, ok := onezoneRoutes[r.invite.Name]
		if !ok || r.path != want[0] || r.location+"%s" != want[1] {
			t.Errorf("%s: %s → %s%%s, want %v", r.invite.Name, r.path, r.location, want)
		}
		if r.byUser() != strings.HasPrefix(r.path, "/user/") || r.byUser() != (r.privilege == "") {
			t.Errorf("%s: by user %v, privilege %q", r.invite.Name, r.byUser(), r.privilege)
		}
	}
}

func TestPathSegment(t *testing.T) {
	for _, c := range []struct {
		path string
		n    int
		want string
	}{
		{"/groups/g1/parents/join", 1, "g1"}, {"/groups/g1/parents/join", 0, "groups"}, {"/groups/g1/parents/join", 3, "join"},
		{"/groups/g1/parents/join", 4, ""}, {"/groups", 1, ""}, {"/", 0, ""}, {"", 1, ""}, {"/a//b", 1, ""}, {"/a/b/", 1, "b"},
	} {
		if got := pathSegment(c.path, c.n); got != c.want {
			t.Errorf("pathSegment(%q, %d) = %q, want %q", c.path, c.n, got, c.want)
		}
	}
}

func TestCheckServe(t *testing.T) {
	for _, ok := range []string{"", "userJoinGroup", "groupJoinAtmInventory", "examine", "verify"} {
		if err := checkServe(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"supportSpace", "registerOneprovider", "UserJoinGroup", "ujg", "join"} {
		if err := checkServe(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// routeRow is one request to one join route, and what must come of it.
type routeRow struct {
	name     string
	route    *joinRoute
	path     string
	token    string
	caller   string // access token
	status   int
	code     string
	desc     string // part of the error description
	ozStatus int    // in Onezone's model: the status and error id
	ozID     string
	location string      // of a 201
	headers  http.Header // the edge's headers the backend gets on a 201
}

// routeRows are, for every join route: admitted (with the backend's
// headers and Location), an invite of another type, a self-join (a refusal
// where the joiner and target types are the same, admitted where they
// differ), a path {id} outside the identifier alphabet, an invite bound to
// another consumer, and an access token whose api caveat allows another
// entity type's join.
func routeRows(t *testing.T) []routeRow {
	var rows []routeRow
	alice := access(t, "alice")
	p := tokens.Persistence{Generation: 0} // temporary: the store has no say (TestJoinRoutesStore)
	for i := range joinRoutes {
		r := &joinRoutes[i]
		typ := r.invite
		name := typ.Name
		entity, path := "alice", r.path
		if !r.byUser() {
			entity = "e-" + typ.Code
			path = strings.Replace(r.path, "{id}", entity, 1)
		}
		loc := func(target string) string {
			return strings.Replace(fmt.Sprintf(onezoneRoutes[name][1], target), "{id}", entity, 1)
		}
		mint := func(typ tokens.InviteType, target string, cavs ...string) (string, string) {
			id := tokens.NewTokenID()
			return mintT(t, testSecret, tokens.InviteIDOf(p, typ, "bob", target, id), append([]string{inHour()}, cavs...)...), id
		}
		tok, id := mint(typ, "t1")
		rows = append(rows, routeRow{name: name + "/admitted", route: r, path: path, token: tok, caller: alice,
			status: 201, location: loc("t1"), headers: edgeHeaders("alice", name, entity, "t1", id, "usr-bob")})

		other := tokens.UserJoinGroup
		if typ.Code == other.Code {
			other, _ = tokens.InviteTypeByName("groupJoinGroup")
		}
		tok, _ = mint(other, "t1")
		rows = append(rows, routeRow{name: name + "/wrong type", route: r, path: path, token: tok, caller: alice,
			status: 400, code: "invalid_token", desc: wrongTypeDesc(typ), ozStatus: 400, ozID: "badValueToken"})

		tok, id = mint(typ, entity)
		if typ.Joiner == typ.Target {
			rows = append(rows, routeRow{name: name + "/self-join", route: r, path: path, token: tok, caller: alice,
				status: 400, code: "invalid_request", desc: "cannot join itself", ozStatus: 400, ozID: "cannotAddRelationToSelf"})
		} else {
			rows = append(rows, routeRow{name: name + "/same id, another type", route: r, path: path, token: tok, caller: alice,
				status: 201, location: loc(entity), headers: edgeHeaders("alice", name, entity, entity, id, "usr-bob")})
		}

		if !r.byUser() {
			tok, _ = mint(typ, "t1")
			rows = append(rows, routeRow{name: name + "/id outside the alphabet", route: r, path: strings.Replace(r.path, "{id}", "a$b", 1),
				token: tok, caller: alice, status: 400, code: "invalid_request", desc: "joining entity", ozStatus: 400, ozID: "badValueIdentifier"})
		}

		tok, _ = mint(typ, "t1", "consumer = usr-carol")
		rows = append(rows, routeRow{name: name + "/consumer-bound to another user", route: r, path: path, token: tok, caller: alice,
			status: 403, code: "forbidden", desc: "not meant for the current user", ozStatus: 400, ozID: "tokenCaveatUnverified"})
		tok, id = mint(typ, "t1", "consumer = usr-alice")
		rows = append(rows, routeRow{name: name + "/consumer-bound to the caller", route: r, path: path, token: tok, caller: alice,
			status: 201, location: loc("t1"), headers: edgeHeaders("alice", name, entity, "t1", id, "usr-bob")})

		tok, _ = mint(typ, "t1")
		api := "group"
		if typ.Target == tokens.EntityGroup {
			api = "space"
		}
		rows = append(rows, routeRow{name: name + "/access token for another join", route: r, path: path, token: tok,
			caller: access(t, "alice", "api = ozw/create/"+api+".*.join:*"), status: 401, code: "invalid_token", ozStatus: 401, ozID: "unauthorized"})
		tok, id = mint(typ, "t1")
		rows = append(rows, routeRow{name: name + "/access token for this join", route: r, path: path, token: tok,
			caller: access(t, "alice", "api = ozw/create/"+typ.Target.String()+".*.join:*"),
			status: 201, location: loc("t1"), headers: edgeHeaders("alice", name, entity, "t1", id, "usr-bob")})
	}
	return rows
}

// checkRouteAnswer checks one row's answer, in the model given, and what
// the backend got.
func checkRouteAnswer(t *testing.T, onezone bool, row routeRow, status int, header http.Header, body []byte, backend []http.Header) {
	t.Helper()
	if onezone && row.status != http.StatusCreated {
		if status != row.ozStatus || decodeOz(t, body).Error.ID != row.ozID {
			t.Errorf("answer %d %s, want %d %s", status, body, row.ozStatus, row.ozID)
		}
		validateError(t, true, body)
		if len(backend) != 0 {
			t.Errorf("a refused request reached the backend")
		}
		return
	}
	if status != row.status {
		t.Fatalf("status %d, want %d: %s", status, row.status, body)
	}
	if row.status != http.StatusCreated {
		validateError(t, false, body)
		var doc struct {
			Error string `json:"error"`
			Desc  string `json:"error_description"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.Error != row.code || !strings.Contains(doc.Desc, row.desc) {
			t.Errorf("answer %s, want %s with %q", body, row.code, row.desc)
		}
		if len(backend) != 0 {
			t.Errorf("a refused request reached the backend")
		}
		return
	}
	if got := header.Get("Location"); got != row.location {
		t.Errorf("Location %q, want %q", got, row.location)
	}
	if len(backend) != 1 {
		t.Fatalf("backend got %d requests, want 1", len(backend))
	}
	for k := range backend[0] {
		if edgeOwned(k) && row.headers[k] == nil {
			t.Errorf("backend got %s: %q, which the edge does not set on this route", k, backend[0][k])
		}
	}
	for k, v := range row.headers {
		if got := backend[0][k]; len(got) != 1 || got[0] != v[0] {
			t.Errorf("backend %s: %q, want %q", k, got, v)
		}
	}
}

// forgedHeaders are client copies of every edge header, which must never
// reach the backend.
var forgedHeaders = func() http.Header {
	h := http.Header{}
	for _, k := range upstreamHeaders {
		h[k] = []string{"forged"}
	}
	return h
}()

// Every route's rows through ServeHTTP, in both error models: one handler
// per route, all on the shared state of one.
func TestJoinRoutesServeHTTP(t *testing.T) {
	for _, model := range []string{ModelDocumented, ModelOnezone} {
		t.Run(model, func(t *testing.T) { testJoinRoutesServeHTTP(t, model) })
	}
}

func testJoinRoutesServeHTTP(t *testing.T, model string) {
	base := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, Store: &StoreConfig{Type: "memory"}, ErrorModel: model}})
	handlers := map[string]*Handler{}
	for _, r := range joinRoutes {
		handlers[r.invite.Name] = sibling(t, base, r.invite.Name)
	}
	for _, row := range routeRows(t) {
		t.Run(row.name, func(t *testing.T) {
			var backend []http.Header
			next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				backend = append(backend, r.Header.Clone())
				w.WriteHeader(http.StatusNoContent)
				return nil
			})
			r := handlerRequest("192.0.2.1", row.caller, joinBody(row.token))
			r.URL.Path = row.path
			maps.Copy(r.Header, forgedHeaders)
			w := httptest.NewRecorder()
			if err := handlers[row.route.invite.Name].ServeHTTP(w, r, next); err != nil {
				t.Fatal(err)
			}
			checkRouteAnswer(t, model == ModelOnezone, row, w.Code, w.Header(), w.Body.Bytes(), backend)
		})
	}
}

// routesSite is a Caddy serving every join route from one global
// group_join option, with Caddy's path matchers choosing the route.
func routesSite(t *testing.T, shared string) *site {
	lines := []string{}
	for _, r := range joinRoutes {
		lines = append(lines, "group_join "+strings.Replace(r.path, "{id}", "*", 1)+" "+r.invite.Name)
	}
	return startRoutesSite(t, shared, lines...)
}

// Every route's rows through a real Caddy with reverse_proxy to a
// recording backend, in both error models.
func TestJoinRoutesInCaddy(t *testing.T) {
	for _, model := range []string{ModelDocumented, ModelOnezone} {
		t.Run(model, func(t *testing.T) { testJoinRoutesInCaddy(t, model) })
	}
}

func testJoinRoutesInCaddy(t *testing.T, model string) {
	s := routesSite(t, "\t\tkey "+testSecret+"\n\t\tstore memory\n\t\terror_model "+model)
	for _, row := range routeRows(t) {
		t.Run(row.name, func(t *testing.T) {
			s.backend.reset()
			headers := []string{"Content-Type", "application/json", "X-Auth-Token", row.caller}
			for k, v := range forgedHeaders {
				headers = append(headers, k, v[0])
			}
			resp := s.do(http.MethodPost, row.path, joinBody(row.token), headers...)
			body := bodyOf(resp)
			var backend []http.Header
			for _, r := range s.backend.requests() {
				if r.path != row.path {
					t.Errorf("backend got %s, want %s", r.path, row.path)
				}
				backend = append(backend, r.header)
			}
			checkRouteAnswer(t, model == ModelOnezone, row, resp.StatusCode, resp.Header, []byte(body), backend)
		})
	}
}
