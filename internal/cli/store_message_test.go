package cli

import "testing"

// Errors are read in every form a Caddy with group_join answers.
func TestErrorMessage(t *testing.T) {
	for raw, want := range map[string]string{
		`{"error":"invite x is already registered"}`:                                       "invite x is already registered",
		`{"error":"invalid_token","error_description":"Invite token has been revoked."}`:   "invalid_token: Invite token has been revoked.",
		`{"error":{"id":"tokenRevoked","description":"Provided token has been revoked."}}`: "tokenRevoked: Provided token has been revoked.",
		"404 page not found\n": "404 page not found",
		`{"error":{}}`:         `{"error":{}}`,
	} {
		if got := errorMessage([]byte(raw)); got != want {
			t.Errorf("%s: %q, want %q", raw, got, want)
		}
	}
}
