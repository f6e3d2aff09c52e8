package groupjoin

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// countingGeo counts lookups.
type countingGeo struct{ country, asn int }

func (g *countingGeo) Country(netip.Addr) (string, error) { g.country++; return "PL", nil }

func (g *countingGeo) ASN(netip.Addr) (uint32, error) { g.asn++; return 64500, nil }

// The handler's Env is Verifier.Env's, with a Geo that looks each thing up
// once per request.
func TestRequestEnv(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	for _, service := range []string{"", "ozw-elsewhere"} {
		for _, ip := range []string{"192.0.2.1", "2001:db8::1", "", "not an ip"} {
			for _, geo := range []tokens.Geo{nil, &countingGeo{}} {
				h := &Handler{verifier: tokens.Verifier{Service: service, Geo: geo}}
				got, want := h.newRequest(now, ip).Env, *h.verifier.Env(now, ip, "")
				if geo != nil {
					if m, ok := got.Geo.(*geoMemo); !ok || m.geo != geo {
						t.Fatalf("Geo %T, want the memo over the configured one", got.Geo)
					}
					got.Geo = geo
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("service %q ip %q: env %+v, want %+v", service, ip, got, want)
				}
			}
		}
	}

	g := &countingGeo{}
	h := &Handler{verifier: tokens.Verifier{Geo: g}}
	env := &h.newRequest(now, "192.0.2.1").Env
	invite := &tokens.Token{ID: tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", "t1")}
	for _, c := range []string{"geo.country = PL", "geo.region = EU", "geo.country != FR", "asn = 64500", "asn = 64500|64501"} {
		cav, err := tokens.ParseCaveat(c)
		if err != nil {
			t.Fatal(err)
		}
		invite.Caveats = append(invite.Caveats, cav)
	}
	for range 2 {
		if err := invite.CheckInvite(env); err != nil {
			t.Fatal(err)
		}
	}
	if g.country != 1 || g.asn != 1 {
		t.Fatalf("%d country and %d ASN lookups for one request, want 1 and 1", g.country, g.asn)
	}
	// Another request looks up again.
	if err := invite.CheckInvite(&h.newRequest(now, "192.0.2.1").Env); err != nil || g.country != 2 || g.asn != 2 {
		t.Fatalf("second request: %v, %d country and %d ASN lookups", err, g.country, g.asn)
	}
	// A failed lookup is a failed caveat, every time it is asked.
	failing := &Handler{verifier: tokens.Verifier{Geo: &tokens.GeoDB{}}}
	env = &failing.newRequest(now, "192.0.2.1").Env
	for range 2 {
		if err := invite.CheckInvite(env); tokens.KindOf(err) != tokens.KindCaveat {
			t.Fatalf("lookup failure: %v", err)
		}
	}
}

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
