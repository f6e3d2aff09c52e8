package groupjoin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"go.yaml.in/yaml/v3"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// The published error schemas (testdata/onezone-swagger), compiled once.
var (
	schemaOnce                sync.Once
	onezoneSchema, docdSchema *jsonschema.Schema
	schemaErr                 error
)

func errorSchemas(t testing.TB) (documented, onezone *jsonschema.Schema) {
	t.Helper()
	schemaOnce.Do(func() {
		load := func(file string) (*jsonschema.Schema, error) {
			b, err := os.ReadFile("testdata/onezone-swagger/" + file)
			if err != nil {
				return nil, err
			}
			var doc any
			if err := yaml.Unmarshal(b, &doc); err != nil {
				return nil, err
			}
			c := jsonschema.NewCompiler()
			if err := c.AddResource(file, doc); err != nil {
				return nil, err
			}
			return c.Compile(file)
		}
		if docdSchema, schemaErr = load("error-2016.yaml"); schemaErr == nil {
			onezoneSchema, schemaErr = load("error.yaml")
		}
	})
	if schemaErr != nil {
		t.Fatal(schemaErr)
	}
	return docdSchema, onezoneSchema
}

// validateError checks an error body against the schema of its model.
func validateError(t testing.TB, onezone bool, body []byte) {
	t.Helper()
	documented, oz := errorSchemas(t)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("error body is not JSON: %.300q", body)
	}
	s := documented
	if onezone {
		s = oz
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%.400s does not match the %s schema: %v", body, map[bool]string{false: "documented", true: "onezone"}[onezone], err)
	}
	// The published documented schema names no required member and the
	// current one does not forbid extra ones: each model's body must also
	// fail the other's, so that neither passes by being empty.
	other := oz
	if onezone {
		other = documented
	}
	if other.Validate(v) == nil {
		t.Errorf("%.300s matches the other model's schema too", body)
	}
}

// ozDoc is an onezone-model body, decoded.
type ozDoc struct {
	Error struct {
		ID          string         `json:"id"`
		Description string         `json:"description"`
		Details     map[string]any `json:"details"`
	} `json:"error"`
}

func decodeOz(t testing.TB, body []byte) ozDoc {
	t.Helper()
	var d ozDoc
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("%.300q: %v", body, err)
	}
	return d
}

// everyAnswer is every error answer the edge writes, with the errors that
// make the dynamic ones.
func everyAnswer(t *testing.T) []answer {
	t.Helper()
	oz := &Handler{sharedState: &sharedState{onezone: true}, route: &joinRoutes[1], wrongType: wrongTypeDesc(joinRoutes[1].invite)}
	p := tokens.Persistence{Named: true}
	ujs, _ := tokens.InviteTypeByName("userJoinSpace")
	received := authenticated(t, tokens.InviteIDOf(p, ujs, "bob", "s1", "t1"))
	all := []answer{ansMethod, ansNoUser, ansBadUser, ansUserExpired, ansInvalid, ansForbidden, ansInternal,
		ansUnavailable, ansNoBackend, ansBadGatewayNX, ansTooEarly, ansQuery, ansTarget, ansEncoded, ansTrailers,
		ansSelfJoin, ansEntity, ansUndecodable, ansSignInToCheck, badRequest(`Field "token" is missing.`)}
	caveatErrs := []string{tokens.TimeCaveat(time.Unix(1700000000, 0)), "ip = 10.0.0.0/8|192.0.2.1", "asn = 64500", "geo.country != PL|FR",
		"geo.region = Europe", "consumer = usr-carol|grp-g1", "interface = rest", "service = ozw-onezone", "api = ozw/create/group.*.join:*",
		"data.readonly", "data.path = L3gK", "data.objectid = 0000", "authorization = none", "bogus = 1"}
	for _, err := range []error{tokens.ErrMalformed, tokens.ErrTooLarge, tokens.ErrThirdParty, tokens.ErrNoKey, tokens.ErrRevoked,
		tokens.ErrSignature, tokens.ErrWrongType, tokens.ErrUsedUp, tokens.ErrUnknown, tokens.ErrSelfJoin, errors.New("other")} {
		all = append(all, oz.inviteAnswer(err, received), oz.inviteAnswer(err, nil), oz.userAnswer(err))
	}
	for _, c := range caveatErrs {
		err := &tokens.Error{Kind: tokens.KindCaveat, Caveat: "x", Text: c}
		all = append(all, oz.inviteAnswer(err, received), oz.userAnswer(err))
	}
	all = append(all, oz.userAnswer(&notUserError{tokens.Subject{Kind: "prv", ID: "p1"}, tokens.ErrWrongType}))
	for s := 100; s <= 599; s++ {
		all = append(all, oz.backendAnswer(s, tokens.Entity{Type: tokens.EntityGroup, ID: "child"}, received),
			oz.backendAnswer(s, tokens.Entity{Type: tokens.EntityUser, ID: "alice"}, received))
	}
	served := []tokens.InviteType{tokens.UserJoinGroup, ujs}
	for _, body := range []string{`{"expectedInviteType":7}`, `{"expectedInviteType":"userJoinCluster"}`, `{"consumerToken":5}`,
		`{"peerIp":"1.2.3.4"}`, `{"interface":"rest"}`, `{"serviceToken":"x"}`, `{"allowDataAccessCaveats":true}`, `{"consumerToken":1,"consumerToken":2}`} {
		_, a := verifyFields([]byte(body), served)
		if a == nil {
			t.Fatalf("%s accepted", body)
		}
		all = append(all, *a)
	}
	for _, body := range []string{`x`, `[]`, `{}`, `{"token":1}`, `{"token":""}`, `{"token":"a","token":"b"}`} {
		_, a := tokenField([]byte(body))
		all = append(all, *a)
	}
	return all
}

func authenticated(t testing.TB, id tokens.Identifier, cavs ...string) *tokens.Token {
	t.Helper()
	keys, _ := tokens.NewKeyring([]byte(testSecret), nil)
	tok, err := keys.Authenticate(mintT(t, testSecret, id, cavs...))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Every answer, written in each model, matches that model's published
// schema, with the headers of an error answer.
func TestErrorModelSchemas(t *testing.T) {
	for _, a := range everyAnswer(t) {
		for _, onezone := range []bool{false, true} {
			w := httptest.NewRecorder()
			status := a.status
			if onezone {
				status = a.writeOnezone(w)
			} else {
				a.write(w)
			}
			if w.Code != status || w.Code < 400 {
				t.Errorf("%s: status %d (returned %d)", a.desc, w.Code, status)
			}
			if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("%s: headers %v", a.desc, w.Header())
			}
			validateError(t, onezone, w.Body.Bytes())
		}
	}
}

// The mapping, row by row: ctool's id, status, description and details.
func TestOnezoneErrors(t *testing.T) {
	gjg := joinRoutes[1].invite
	ujs, _ := tokens.InviteTypeByName("userJoinSpace")
	received := authenticated(t, tokens.InviteIDOf(tokens.Persistence{Named: true}, ujs, "bob", "s1", "t1"))
	h := &Handler{sharedState: &sharedState{onezone: true}, route: &joinRoutes[1], wrongType: wrongTypeDesc(gjg)}
	write := func(a answer) (int, ozDoc) {
		w := httptest.NewRecorder()
		status := a.writeOnezone(w)
		return status, decodeOz(t, w.Body.Bytes())
	}
	detail := func(d ozDoc, path ...string) any {
		var v any = d.Error.Details
		for _, k := range path {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	rows := []struct {
		name   string
		a      answer
		status int
		id     string
		desc   string
		check  func(d ozDoc) bool
	}{
		{"wrong type", h.inviteAnswer(tokens.ErrWrongType, received), 400, "badValueToken", `Bad value: provided "token" is not a valid token (see details).`,
			func(d ozDoc) bool {
				return detail(d, "key") == "token" && detail(d, "tokenError", "id") == "notAnInviteToken" &&
					detail(d, "tokenError", "details", "expectedInviteType") == "groupJoinGroup" &&
					detail(d, "tokenError", "details", "received", "inviteToken", "inviteType") == "userJoinSpace" &&
					detail(d, "tokenError", "description") == `Expected an invitation token of type 'group_join_group', but received a(n) invite token for a user to join space "s1".`
			}},
		{"undecodable", h.inviteAnswer(tokens.ErrMalformed, nil), 400, "badValueToken", "", func(d ozDoc) bool { return detail(d, "tokenError", "id") == "badToken" }},
		{"too large", h.inviteAnswer(tokens.ErrTooLarge, nil), 400, "badValueToken", "",
			func(d ozDoc) bool { return detail(d, "tokenError", "details", "limit") == float64(tokens.MaxTokenSize) }},
		{"bad signature", h.inviteAnswer(tokens.ErrSignature, received), 400, "tokenInvalid", "Provided token is not valid.", nil},
		{"not registered", h.inviteAnswer(tokens.ErrUnknown, received), 400, "tokenInvalid", "", nil},
		{"revoked", h.inviteAnswer(tokens.ErrRevoked, received), 400, "tokenRevoked", "Provided token has been revoked.", nil},
		{"used up", h.inviteAnswer(tokens.ErrUsedUp, received), 400, "inviteTokenUsageLimitReached", "The usage limit of this invite token has been reached.", nil},
		{"self-join", h.inviteAnswer(tokens.ErrSelfJoin, received), 400, "cannotAddRelationToSelf", "Cannot add relation to self.", nil},
		{"expired", h.inviteAnswer(&tokens.Error{Kind: tokens.KindExpired, Caveat: "time", Text: "time < 1496140144"}, received), 400, "tokenCaveatUnverified",
			"Provided token is not valid - unverified time caveat: this token has expired at '2017-05-30T10:29:04Z'.",
			func(d ozDoc) bool {
				return detail(d, "caveat", "type") == "time" && detail(d, "caveat", "validUntil") == float64(1496140144)
			}},
		{"ip", h.inviteAnswer(&tokens.Error{Kind: tokens.KindCaveat, Caveat: "ip", Text: "ip = 10.0.0.0/8|192.0.2.1"}, received), 400, "tokenCaveatUnverified",
			"Provided token is not valid - unverified IP caveat: this token can only be used from an IP address that matches: '10.0.0.0/8 or 192.0.2.1/32'.", nil},
		{"consumer", h.inviteAnswer(&tokens.Error{Kind: tokens.KindConsumer, Caveat: "consumer", Text: "consumer = usr-carol"}, received), 400, "tokenCaveatUnverified",
			"must authenticate as 'user:carol'", func(d ozDoc) bool { return detail(d, "caveat", "type") == "consumer" }},
		{"unknown caveat", h.inviteAnswer(&tokens.Error{Kind: tokens.KindCaveat, Caveat: "unknown", Text: "bogus = 1"}, received), 400, "tokenCaveatUnknown",
			"Unknown caveat - 'bogus = 1'.", func(d ozDoc) bool { return detail(d, "caveat") == "bogus = 1" }},
		{"access token expired", h.userAnswer(&tokens.Error{Kind: tokens.KindExpired, Caveat: "time", Text: "time < 1496140144"}), 401, "unauthorized",
			"Provided authentication is not valid (see details).", func(d ozDoc) bool { return detail(d, "authError", "id") == "tokenCaveatUnverified" }},
		{"access token forged", h.userAnswer(tokens.ErrSignature), 401, "unauthorized", "", func(d ozDoc) bool { return detail(d, "authError", "id") == "tokenInvalid" }},
		{"a provider's access token", h.userAnswer(&notUserError{tokens.Subject{Kind: "prv", ID: "p1"}, tokens.ErrWrongType}), 400, "inviteTokenConsumerInvalid",
			"The consumer 'oneprovider:p1' is invalid for this type of invite token.",
			func(d ozDoc) bool {
				return detail(d, "consumer", "type") == "oneprovider" && detail(d, "consumer", "id") == "p1"
			}},
		{"no credentials", ansNoUser, 401, "unauthorized", "You must authenticate yourself to perform this operation.", nil},
		{"method", ansMethod, 405, "notSupported", "", nil},
		{"early data", ansTooEarly, 425, "temporaryFailure", "", nil},
		{"store down", ansUnavailable, 503, "serviceUnavailable", "Service required for this operation is offline.", nil},
		{"internal", ansInternal, 500, "internalServerError", "The server has encountered an error while processing this request.", nil},
		{"entity id", ansEntity, 400, "badValueIdentifier", `Bad value: provided "id" is not a valid identifier.`, nil},
		{"query", ansQuery, 400, "malformedData", "Provided data could not be understood by the server.", nil},
		{"already a member", h.backendAnswer(409, tokens.Entity{Type: tokens.EntityGroup, ID: "child"}, received), 409, "relationAlreadyExists",
			"Bad value: group:child is already a member of group:s1.",
			func(d ozDoc) bool {
				return detail(d, "childType") == "group" && detail(d, "childId") == "child" && detail(d, "parentType") == "group" && detail(d, "parentId") == "s1"
			}},
		{"target gone", h.backendAnswer(404, tokens.Entity{Type: tokens.EntityUser, ID: "alice"}, received), 400, "inviteTokenTargetIdInvalid",
			"The target id 's1' is invalid for this type of invite token.", func(d ozDoc) bool { return detail(d, "id") == "s1" }},
		{"an entity gone", h.backendAnswer(404, tokens.Entity{Type: tokens.EntityGroup, ID: "child"}, received), 404, "notFound",
			"The resource could not be found.", nil},
		{"gateway timeout", h.backendAnswer(504, tokens.Entity{}, received), 503, "timeout", "Operation timed out.", nil},
	}
	for _, r := range rows {
		status, d := write(r.a)
		if status != r.status || d.Error.ID != r.id || !strings.Contains(d.Error.Description, r.desc) || (r.check != nil && !r.check(d)) {
			b, _ := json.Marshal(d)
			t.Errorf("%s: %d %s, want %d %s %q", r.name, status, b, r.status, r.id, r.desc)
		}
	}
}

// The expectedInviteType refusal names the types served, and the token
// fields answer as Onezone's request validation does.
func TestOnezoneFieldErrors(t *testing.T) {
	for _, c := range []struct{ body, id, key string }{
		{`{}`, "missingRequiredValue", "token"},
		{`{"token":""}`, "badValueEmpty", "token"},
		{`{"token":7}`, "badValueToken", "token"},
		{`[1]`, "malformedData", ""},
	} {
		_, a := tokenField([]byte(c.body))
		w := httptest.NewRecorder()
		a.writeOnezone(w)
		d := decodeOz(t, w.Body.Bytes())
		if d.Error.ID != c.id || (c.key != "" && d.Error.Details["key"] != c.key) {
			t.Errorf("%s: %s", c.body, w.Body)
		}
	}
	_, a := verifyFields([]byte(`{"expectedInviteType":"userJoinCluster"}`), []tokens.InviteType{tokens.UserJoinGroup})
	w := httptest.NewRecorder()
	a.writeOnezone(w)
	if d := decodeOz(t, w.Body.Bytes()); d.Error.ID != "badValueNotAllowed" || fmt.Sprint(d.Error.Details["allowed"]) != "[userJoinGroup]" {
		t.Errorf("expectedInviteType: %s", w.Body)
	}
}

func TestAtomName(t *testing.T) {
	for in, want := range map[string]string{"userJoinGroup": "user_join_group", "groupJoinAtmInventory": "group_join_atm_inventory", "any": "any"} {
		if got := atomName(in); got != want {
			t.Errorf("%s: %s", in, got)
		}
	}
	_ = http.StatusOK
}

// A real Caddy in Onezone's model: a backend's 409 becomes
// relationAlreadyExists naming the route's parts, and the use it reserved
// is given back; an answer of the backend that already is a ctool error
// passes unchanged, one in the documented model is normalised; the
// preview endpoints answer in the model too.
func TestOnezoneModelInCaddy(t *testing.T) {
	s := startRoutesSite(t, "\t\tkey "+testSecret+"\n\t\tstore memory\n\t\terror_model onezone",
		"group_join /user/groups/join", "group_join /groups/*/parents/join groupJoinGroup",
		"group_join /tokens/examine examine", "group_join /tokens/verify_invite_token verify")
	st := memoryStore(t, 0)
	gjg, _ := tokens.InviteTypeByName("groupJoinGroup")
	id := tokens.NewTokenID()
	tok := mintT(t, testSecret, tokens.InviteIDOf(tokens.Persistence{Named: true}, gjg, "bob", "physics", id), inHour())
	if err := st.Register(t.Context(), id, 1, 0); err != nil {
		t.Fatal(err)
	}
	user := []string{"Content-Type", "application/json", "X-Auth-Token", access(t, "alice")}
	post := func(path, body string) (int, []byte) {
		resp := s.do(http.MethodPost, path, body, user...)
		return resp.StatusCode, []byte(bodyOf(resp))
	}

	// The example backend's 409, in the documented model.
	s.backend.respond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":"already_member","error_description":"User is already a member of this group."}`))
	})
	status, body := post("/groups/optics/parents/join", joinBody(tok))
	d := decodeOz(t, body)
	if status != 409 || d.Error.ID != "relationAlreadyExists" || d.Error.Description != "Bad value: group:optics is already a member of group:physics." ||
		d.Error.Details["childId"] != "optics" || d.Error.Details["parentType"] != "group" {
		t.Errorf("409: %d %s", status, body)
	}
	validateError(t, true, body)
	if inv, err := st.Get(t.Context(), id); err != nil || inv.Used != 0 || inv.Reserved != 0 {
		t.Errorf("after a 409 the use was not given back: %+v %v", inv, err)
	}

	// A backend that answers in Onezone's model: unchanged.
	own := `{"error":{"id":"forbidden","description":"You are not authorized to perform this operation: lacks group_add_parent.","details":{"hint":"lacks group_add_parent"}}}`
	s.backend.respond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(own))
	})
	if status, body := post("/groups/optics/parents/join", joinBody(tok)); status != 403 || string(body) != own {
		t.Errorf("passed-through answer: %d %s", status, body)
	}

	// The previews.
	status, body = post("/tokens/examine", `{"token":"garbage"}`)
	if d := decodeOz(t, body); status != 400 || d.Error.ID != "badValueToken" {
		t.Errorf("examine: %d %s", status, body)
	}
	bound := mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Generation: 0}, "bob", "g1", tokens.NewTokenID()), "consumer = usr-carol")
	resp := s.do(http.MethodPost, "/tokens/verify_invite_token", joinBody(bound), "Content-Type", "application/json")
	body = []byte(bodyOf(resp))
	if d := decodeOz(t, body); resp.StatusCode != 400 || d.Error.ID != "tokenCaveatUnverified" {
		t.Errorf("verify, nobody signed in: %d %s", resp.StatusCode, body)
	}
	validateError(t, true, body)
}

// In the documented model a backend's ctool error is not the model's: it
// is normalised by its status.
func TestDocumentedModelNormalisesOnezoneBackend(t *testing.T) {
	s := startSite(t, "\t\tkey "+testSecret)
	s.backend.respond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":{"id":"relationAlreadyExists","description":"x"}}`))
	})
	resp := s.join(joinBody(invite(t, "g1")), "X-Auth-Token", access(t, "alice"))
	body := bodyOf(resp)
	if resp.StatusCode != 409 || body != `{"error":"already_member","error_description":"The user is already a member of this group."}` {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

// The decision log and the metric outcome are the model's business no
// more than the backend's: the same request logs the same outcome in
// both; the status logged is the one sent.
func TestModelKeepsOutcomes(t *testing.T) {
	outcomes := map[string][]string{}
	for _, model := range []string{ModelDocumented, ModelOnezone} {
		h := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, ErrorModel: model}})
		core, logs := observer.New(zap.InfoLevel)
		h.logger = zap.New(core)
		for _, c := range []struct{ user, body string }{
			{"", joinBody(invite(t, "g1"))},
			{access(t, "alice"), `{"token":"x"}`},
			{access(t, "alice"), joinBody(invite(t, "g1", "consumer = usr-carol"))},
			{access(t, "alice"), `{}`},
			{"garbage", joinBody(invite(t, "g1"))},
		} {
			w := httptest.NewRecorder()
			_ = h.ServeHTTP(w, handlerRequest("192.0.2.1", c.user, c.body), nil)
		}
		for _, e := range logs.All() {
			m := e.ContextMap()
			outcomes[model] = append(outcomes[model], fmt.Sprint(m["outcome"]))
		}
	}
	if d, o := strings.Join(outcomes[ModelDocumented], " "), strings.Join(outcomes[ModelOnezone], " "); d != o || d == "" {
		t.Errorf("outcomes differ:\n documented %s\n onezone    %s", d, o)
	}
}
