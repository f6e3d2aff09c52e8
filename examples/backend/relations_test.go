package main

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"sync"
	"testing"
)

// edgeHeaders are what the edge sets on a join of inviteType.
func edgeHeaders(inviteType, user, entity, target string) map[string]string {
	return map[string]string{
		"Content-Type": "application/json", hdrInviteType: inviteType, hdrUserID: user,
		hdrEntityID: entity, hdrTargetID: target, hdrTokenID: "tok-" + target, hdrIssuer: "usr-bob",
	}
}

func list(t *testing.T, base, path string) []string {
	t.Helper()
	var ids []string
	a := do(t, http.MethodGet, base+path, nil, "")
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, a.status, a.body)
	}
	if err := json.Unmarshal([]byte(a.body), &ids); err != nil {
		t.Fatal(err)
	}
	return ids
}

func newRelationsBackend(t *testing.T, dsn string) string {
	srv, db := newTestBackend(t, dsn)
	ctx := context.Background()
	if err := ensureSpaces(ctx, db, []string{"datasets"}); err != nil {
		t.Fatal(err)
	}
	if err := ensureGrants(ctx, db, []grant{{"operators", "alice", privAddParent}}); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

func TestJoinSpace(t *testing.T) {
	for name, dsn := range dsns(t) {
		t.Run(name, func(t *testing.T) {
			base := newRelationsBackend(t, dsn)
			post := func(h map[string]string) answer {
				return do(t, http.MethodPost, base+"/user/spaces/join", h, `{"token":"x"}`)
			}
			if a := post(edgeHeaders("userJoinSpace", "alice", "alice", "datasets")); a.status != http.StatusNoContent {
				t.Fatalf("join: %d %s", a.status, a.body)
			}
			wantError(t, post(edgeHeaders("userJoinSpace", "alice", "alice", "datasets")), http.StatusConflict, "already_member")
			wantError(t, post(edgeHeaders("userJoinSpace", "alice", "alice", "nowhere")), http.StatusNotFound, "not_found")
			wantError(t, post(edgeHeaders("userJoinGroup", "bob", "bob", "datasets")), http.StatusBadRequest, "invalid_request")
			h := edgeHeaders("userJoinSpace", "bob", "bob", "datasets")
			delete(h, hdrTargetID)
			wantError(t, post(h), http.StatusBadRequest, "invalid_request")
			if got := list(t, base, "/spaces/datasets/members"); !reflect.DeepEqual(got, []string{"alice"}) {
				t.Errorf("members %q", got)
			}
			wantError(t, do(t, http.MethodGet, base+"/spaces/nowhere/members", nil, ""), http.StatusNotFound, "not_found")
		})
	}
}

func TestJoinParent(t *testing.T) {
	for name, dsn := range dsns(t) {
		t.Run(name, func(t *testing.T) {
			base := newRelationsBackend(t, dsn)
			post := func(child string, h map[string]string) answer {
				return do(t, http.MethodPost, base+"/groups/"+child+"/parents/join", h, `{"token":"x"}`)
			}
			// bob lacks group_add_parent in operators.
			wantError(t, post("operators", edgeHeaders("groupJoinGroup", "bob", "operators", "developers")), http.StatusForbidden, "forbidden")
			if a := post("operators", edgeHeaders("groupJoinGroup", "alice", "operators", "developers")); a.status != http.StatusNoContent {
				t.Fatalf("join: %d %s", a.status, a.body)
			}
			wantError(t, post("operators", edgeHeaders("groupJoinGroup", "alice", "operators", "developers")), http.StatusConflict, "already_member")
			wantError(t, post("operators", edgeHeaders("groupJoinGroup", "alice", "operators", "operators")), http.StatusBadRequest, "invalid_request")
			wantError(t, post("operators", edgeHeaders("groupJoinGroup", "alice", "operators", "nowhere")), http.StatusNotFound, "not_found")
			wantError(t, post("operators", edgeHeaders("groupJoinGroup", "alice", "developers", "developers")), http.StatusBadRequest, "invalid_request")
			wantError(t, post("operators", edgeHeaders("userJoinGroup", "alice", "operators", "developers")), http.StatusBadRequest, "invalid_request")
			if got := list(t, base, "/groups/operators/parents"); !reflect.DeepEqual(got, []string{"developers"}) {
				t.Errorf("parents %q", got)
			}
			if got := list(t, base, "/groups/developers/parents"); len(got) != 0 {
				t.Errorf("developers' parents %q", got)
			}
		})
	}
}

// Of many concurrent space joins of one user exactly one succeeds.
func TestConcurrentSpaceJoin(t *testing.T) {
	base := newRelationsBackend(t, dsns(t)["file"])
	var wg sync.WaitGroup
	codes := make([]int, 32)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = do(t, http.MethodPost, base+"/user/spaces/join", edgeHeaders("userJoinSpace", "carol", "carol", "datasets"), `{}`).status
		}()
	}
	wg.Wait()
	created := 0
	for _, c := range codes {
		switch c {
		case http.StatusNoContent:
			created++
		case http.StatusConflict:
		default:
			t.Errorf("status %d", c)
		}
	}
	if created != 1 {
		t.Errorf("%d joins succeeded, want 1", created)
	}
}

func TestParseGrants(t *testing.T) {
	got, err := parseGrants(" a:u:p , b:v:q,a:u:p")
	if err != nil || !reflect.DeepEqual(got, []grant{{"a", "u", "p"}, {"b", "v", "q"}}) {
		t.Errorf("%+v %v", got, err)
	}
	for _, bad := range []string{"a:u", "a:u:p:x", ":u:p"} {
		if _, err := parseGrants(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
