package groupjoin

import (
	"net/http"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestIdentitySources(t *testing.T) {
	// basic_auth sets {http.auth.user.id}; the placeholder source reads it.
	// Password "secret", bcrypt at the lowest cost to keep the test fast.
	h, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hash := string(h)
	s := startSite(t, "key "+testSecret+"\n\t\tidentity access_token\n\t\tidentity placeholder {http.auth.user.id}",
		"basic_auth /user/groups/join {\n\t\tcarol "+hash+"\n\t}")
	inv := joinBody(invite(t, "g1"))
	check := func(name string, wantUser string, headers ...string) {
		t.Run(name, func(t *testing.T) {
			s.backend.reset()
			resp := s.join(inv, headers...)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d %s", resp.StatusCode, bodyOf(resp))
			}
			reqs := s.backend.requests()
			if len(reqs) != 1 || reqs[0].header.Get("X-User-Id") != wantUser {
				t.Fatalf("backend saw %+v", reqs)
			}
		})
	}
	// With basic_auth in front, every request needs the password; the
	// access token (if any) is tried first.
	basic := []string{"Authorization", "Basic Y2Fyb2w6c2VjcmV0"} // carol:secret
	check("placeholder", "carol", basic...)
	check("X-Auth-Token before placeholder", "alice", append(basic, "X-Auth-Token", access(t, "alice"))...)
	check("Macaroon header", "dave", append(basic, "Macaroon", access(t, "dave"))...)
	resp := s.join(inv, append(basic, "X-Auth-Token", "broken")...)
	expectError(t, resp, 401, "invalid_token")
}

func TestBearerAndMacaroonHeaders(t *testing.T) {
	s := startSite(t, "key "+testSecret)
	inv := joinBody(invite(t, "g1"))
	for _, h := range [][]string{
		{"Authorization", "Bearer " + access(t, "u1")},
		{"Authorization", "bearer " + access(t, "u1")},
		{"Macaroon", access(t, "u1")},
		{"X-Auth-Token", access(t, "u1"), "Authorization", "Bearer garbage"},
	} {
		s.backend.reset()
		resp := s.join(inv, h...)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: status %d %s", h[0], resp.StatusCode, bodyOf(resp))
		}
		if u := s.backend.requests()[0].header.Get("X-User-Id"); u != "u1" {
			t.Fatalf("user %q", u)
		}
	}
}

// accessTokenFrom: X-Auth-Token, else Authorization: Bearer, else
// Macaroon; a repeated or empty header is ambiguous; another
// Authorization scheme is not ours.
func TestAccessTokenFrom(t *testing.T) {
	for _, c := range []struct {
		name        string
		headers     []string
		tok         string
		present, ok bool
	}{
		{"none", nil, "", false, false},
		{"X-Auth-Token", []string{"X-Auth-Token", "a"}, "a", true, true},
		{"bearer", []string{"Authorization", "Bearer b"}, "b", true, true},
		{"bearer in any case, spaces trimmed", []string{"Authorization", "bEaReR   b  "}, "b", true, true},
		{"macaroon", []string{"Macaroon", "m"}, "m", true, true},
		{"X-Auth-Token first", []string{"Macaroon", "m", "Authorization", "Bearer b", "X-Auth-Token", "a"}, "a", true, true},
		{"bearer before macaroon", []string{"Macaroon", "m", "Authorization", "Bearer b"}, "b", true, true},
		{"basic is not ours", []string{"Authorization", "Basic YTpi"}, "", false, false},
		{"basic, then macaroon", []string{"Authorization", "Basic YTpi", "Macaroon", "m"}, "m", true, true},
		{"repeated X-Auth-Token", []string{"X-Auth-Token", "a", "X-Auth-Token", "a"}, "a", true, false},
		{"empty X-Auth-Token", []string{"X-Auth-Token", ""}, "", true, false},
		{"empty bearer", []string{"Authorization", "Bearer "}, "", true, false},
		{"repeated bearer", []string{"Authorization", "Bearer b", "Authorization", "Bearer c"}, "b", true, false},
		{"repeated macaroon", []string{"Macaroon", "m", "Macaroon", "n"}, "m", true, false},
	} {
		h := http.Header{}
		for i := 0; i+1 < len(c.headers); i += 2 {
			h.Add(c.headers[i], c.headers[i+1])
		}
		tok, present, ok := accessTokenFrom(h)
		if tok != c.tok || present != c.present || ok != c.ok {
			t.Errorf("%s: %q, present %v, ok %v; want %q, %v, %v", c.name, tok, present, ok, c.tok, c.present, c.ok)
		}
	}
}
