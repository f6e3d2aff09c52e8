package groupjoin

import (
	"net/netip"
	"reflect"
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
				h := &Handler{sharedState: &sharedState{verifier: tokens.Verifier{Service: service, Geo: geo}}}
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
	h := &Handler{sharedState: &sharedState{verifier: tokens.Verifier{Geo: g}}}
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
	failing := &Handler{sharedState: &sharedState{verifier: tokens.Verifier{Geo: &tokens.GeoDB{}}}}
	env = &failing.newRequest(now, "192.0.2.1").Env
	for range 2 {
		if err := invite.CheckInvite(env); tokens.KindOf(err) != tokens.KindCaveat {
			t.Fatalf("lookup failure: %v", err)
		}
	}
}
