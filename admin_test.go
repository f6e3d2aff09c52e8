package groupjoin

// The admin API (/group-join/...) on a real Caddy admin endpoint: listing
// stores, registering, reading and revoking invites.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/testcaddy"
)

// adminCall sends one request to a Caddy admin endpoint (Host is the admin
// address, as Caddy's Host check wants) and returns status and body.
func adminCall(t testing.TB, addr, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := storeHTTP.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// adminState is GET /group-join/invites/<id>.
type adminState struct {
	ID        string     `json:"id"`
	Store     string     `json:"store"`
	Limit     any        `json:"limit"`
	Used      int64      `json:"used"`
	Reserved  int64      `json:"reserved"`
	Remaining any        `json:"remaining"`
	Revoked   bool       `json:"revoked"`
	Expires   *time.Time `json:"expires"`
}

func decodeState(t testing.TB, body string) adminState {
	t.Helper()
	var s adminState
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("admin answer %q: %v", body, err)
	}
	return s
}

// registerInvite registers id through the admin API and expects 201.
func registerInvite(t testing.TB, adminAddr, id, uses string) adminState {
	t.Helper()
	status, body := adminCall(t, adminAddr, http.MethodPost, "/group-join/invites", `{"id":"`+id+`","uses":`+uses+`,"ttl":"1h"}`)
	if status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", id, status, body)
	}
	return decodeState(t, body)
}

func getInviteState(t testing.TB, adminAddr, id string) adminState {
	t.Helper()
	status, body := adminCall(t, adminAddr, http.MethodGet, "/group-join/invites/"+id, "")
	if status != http.StatusOK {
		t.Fatalf("state of %s: %d %s", id, status, body)
	}
	return decodeState(t, body)
}

// joinResult is one join as the client saw it.
type joinResult struct {
	status int
	header http.Header
	body   string
	err    error
}

// Two handlers with different stores: the admin API needs ?store=.
func TestStoreAdminSeveralStores(t *testing.T) {
	b := newBackend(t)
	port, adminPort := testcaddy.FreePort(t), testcaddy.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	testcaddy.LoadCaddyfile(t, testGlobals(port, admin)+fmt.Sprintf(`:%[1]d {
	log {
		output discard
	}
	handle_path /a/* {
		group_join {
			key %[4]s
			store memory
		}
		reverse_proxy %[3]s
	}
	handle_path /b/* {
		group_join {
			key %[4]s
			store memory {
				reservation_ttl 10s
			}
		}
		reverse_proxy %[3]s
	}
}
`, port, admin, b.addr(), testSecret))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	user := access(t, "alice")
	tok, id := namedInvite(t, "g1")

	status, body := adminCall(t, admin, http.MethodGet, "/group-join/stores", "")
	if status != 200 || strings.TrimSpace(body) != `{"stores":[{"name":"memory","type":"memory"},{"name":"memory,reservation_ttl=10s","type":"memory"}]}` {
		t.Fatalf("stores: %d %s", status, body)
	}
	if status, body := adminCall(t, admin, http.MethodGet, "/group-join/invites/"+id, ""); status != 400 || !strings.Contains(body, "?store=") {
		t.Fatalf("without ?store=: %d %s", status, body)
	}
	if status, body := adminCall(t, admin, http.MethodPost, "/group-join/invites?store=memory", `{"id":"`+id+`"}`); status != 201 {
		t.Fatalf("register in memory: %d %s", status, body)
	}
	if status, body := adminCall(t, admin, http.MethodGet, "/group-join/invites/"+id+"?store=2", ""); status != 404 {
		t.Fatalf("store 2 has it: %d %s", status, body)
	}
	if status, body := adminCall(t, admin, http.MethodGet, "/group-join/invites/"+id+"?store=1", ""); status != 200 || decodeState(t, body).Store != "memory" {
		t.Fatalf("store 1: %d %s", status, body)
	}
	if status, body := adminCall(t, admin, http.MethodGet, "/group-join/invites/"+id+"?store=redis", ""); status != 404 || !strings.Contains(body, "no group_join store") {
		t.Fatalf("unknown store: %d %s", status, body)
	}
	expectJoin(t, postJoin(base+"/b", tok, user), 400, "invalid_token", descUnknown)
	expectJoin(t, postJoin(base+"/a", tok, user), 201, "", "")
	expectBackend(t, b, 1)
}

func TestStoreAdminWithoutStore(t *testing.T) {
	e := startStoreEdge(t, "")
	for _, c := range [][2]string{{"GET", "/group-join/invites/abc"}, {"POST", "/group-join/invites/abc/revoke"}} {
		status, body := adminCall(t, e.admin, c[0], c[1], "")
		if status != http.StatusNotFound || !strings.Contains(body, "no group_join store configured") {
			t.Fatalf("%s %s: %d %s", c[0], c[1], status, body)
		}
	}
	if status, body := adminCall(t, e.admin, http.MethodGet, "/group-join/stores", ""); status != 200 || strings.TrimSpace(body) != `{"stores":[]}` {
		t.Fatalf("stores: %d %s", status, body)
	}
	// Without a store, named invites are limited by their caveats only.
	tok, _ := namedInvite(t, "g1")
	user := access(t, "alice")
	expectJoin(t, postJoin(e.url, tok, user), 201, "", "")
	expectJoin(t, postJoin(e.url, tok, user), 201, "", "")
}
