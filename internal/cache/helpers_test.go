package cache

import (
	"strconv"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

const testSecret = "cache-test-secret-0123456789"

// sharedInvites is how many distinct invites a busy edge sees shared by
// link, for the doorkeeper's benchmark.
const sharedInvites = 2000

func mintT(t testing.TB, secret string, id tokens.Identifier, cavs ...string) string {
	t.Helper()
	s, err := tokens.Mint([]byte(secret), "", id, cavs...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// invite is a named group invite from bob, signed with testSecret.
func invite(t testing.TB, group string, cavs ...string) string {
	return mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", group, tokens.NewTokenID()), cavs...)
}

func itoa(n int) string { return strconv.Itoa(n) }
