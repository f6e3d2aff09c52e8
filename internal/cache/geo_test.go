package cache

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// ruleGeo answers from fixed rules and counts the lookups that reach it.
type ruleGeo struct {
	countries, asns atomic.Int64
}

var errNotInDB = errors.New("address not in the database")

func (g *ruleGeo) Country(ip netip.Addr) (string, error) {
	g.countries.Add(1)
	if ip.Is6() {
		return "", errNotInDB
	}
	return []string{"PL", "FR", "US"}[ip.As4()[3]%3], nil
}

func (g *ruleGeo) ASN(ip netip.Addr) (uint32, error) {
	g.asns.Add(1)
	if ip.Is6() {
		return 0, errNotInDB
	}
	return 64500 + uint32(ip.As4()[3]), nil
}

// The cache answers what the database answers, errors included, and asks
// it once per address and kind of lookup.
func TestGeoCacheAnswersLikeTheDatabase(t *testing.T) {
	real := &ruleGeo{}
	c := NewGeo(real)
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("2001:db8::1"),
	}
	for range 3 {
		for _, ip := range addrs {
			wantC, wantCErr := (&ruleGeo{}).Country(ip)
			gotC, gotCErr := c.Country(ip)
			if gotC != wantC || !errors.Is(gotCErr, wantCErr) || (gotCErr == nil) != (wantCErr == nil) {
				t.Fatalf("Country(%s) = %q, %v; the database says %q, %v", ip, gotC, gotCErr, wantC, wantCErr)
			}
			wantA, wantAErr := (&ruleGeo{}).ASN(ip)
			gotA, gotAErr := c.ASN(ip)
			if gotA != wantA || (gotAErr == nil) != (wantAErr == nil) {
				t.Fatalf("ASN(%s) = %d, %v; the database says %d, %v", ip, gotA, gotAErr, wantA, wantAErr)
			}
		}
	}
	if n, m := real.countries.Load(), real.asns.Load(); n != int64(len(addrs)) || m != int64(len(addrs)) {
		t.Fatalf("%d country and %d ASN lookups reached the database, want %d each", n, m, len(addrs))
	}
}

func TestGeoCacheBounded(t *testing.T) {
	real := &ruleGeo{}
	c := NewGeo(real)
	base := netip.MustParseAddr("10.0.0.0").As4()
	for i := range 2 * GeoCacheSize {
		a := base
		a[1], a[2], a[3] = byte(i>>16), byte(i>>8), byte(i)
		ip := netip.AddrFrom4(a)
		if got, _ := c.ASN(ip); got != 64500+uint32(a[3]) {
			t.Fatalf("ASN(%s) = %d", ip, got)
		}
		if n := c.len(); n > GeoCacheSize {
			t.Fatalf("%d addresses held after %d, bound %d", n, i+1, GeoCacheSize)
		}
	}
}

// Concurrent lookups of the same and different addresses agree with the
// database (run with -race).
func TestGeoCacheConcurrent(t *testing.T) {
	c := NewGeo(&ruleGeo{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				ip := netip.AddrFrom4([4]byte{192, 0, 2, byte((i + g) % 50)})
				want, _ := (&ruleGeo{}).Country(ip)
				if got, err := c.Country(ip); got != want || err != nil {
					t.Errorf("Country(%s) = %q, %v; want %q", ip, got, err, want)
					return
				}
				if got, err := c.ASN(ip); got != 64500+uint32(ip.As4()[3]) || err != nil {
					t.Errorf("ASN(%s) = %d, %v", ip, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
