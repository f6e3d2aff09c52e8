package groupjoin

import (
	"strings"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// issuerOf writes what Subject.String does, for every kind of subject and
// for ids that do and do not fit the request's room, and the strings of
// one request stay what they were when the request writes another.
func TestIssuerOfMatchesString(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, s := range []tokens.Subject{
		{Kind: "usr", ID: "bob"},
		{Kind: "prv", ID: "p-1.x~y@z"},
		{Kind: "nobody"},
		{Kind: "usr", ID: strings.Repeat("a", 60)}, // 64 bytes in all: fits exactly
		{Kind: "usr", ID: strings.Repeat("a", 61)},
		{Kind: "usr", ID: long},
	} {
		st := new(requestState)
		got := st.issuerOf(s)
		if want := s.String(); got != want {
			t.Errorf("issuerOf(%+v) = %q, want %q", s, got, want)
		}
		if got2 := new(requestState).issuerOf(tokens.Subject{Kind: "prv", ID: "other"}); got2 != "prv-other" || got != s.String() {
			t.Errorf("another request's issuer changed this one's: %q, %q", got, got2)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		new(requestState).issuerOf(tokens.Subject{Kind: "usr", ID: "bob"})
	}); n > 1 { // the requestState itself
		t.Errorf("issuerOf allocates %v times, want none beyond the state", n)
	}
}

// locationOf writes prefix + group, whether it fits the request's room or
// not, and one request's Location stays when another request writes its
// own.
func TestLocationOfMatchesConcat(t *testing.T) {
	for _, c := range []struct{ prefix, group string }{
		{DefaultLocationPrefix, "g1"},
		{"", "g1"},
		{DefaultLocationPrefix, strings.Repeat("g", 64-len(DefaultLocationPrefix))},
		{DefaultLocationPrefix, strings.Repeat("g", 256)},
		{"/custom/prefix/with/some/length/", "group-0123456789abcdef"},
	} {
		got := new(requestState).locationOf(c.prefix, c.group)
		other := new(requestState).locationOf("/x/", "y")
		if want := c.prefix + c.group; got != want || other != "/x/y" {
			t.Errorf("locationOf(%q, %q) = %q (other request: %q), want %q", c.prefix, c.group, got, other, want)
		}
	}
}
