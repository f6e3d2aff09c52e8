package groupjoin

import (
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/mmdbtest"
)

// Handlers with the same geo files, store and metrics share one entry of
// each pool, which lives until the last of them is cleaned up: what a
// reload relies on (the new config provisions before the old one cleans
// up).
func TestPoolsShareAcrossHandlers(t *testing.T) {
	dir := t.TempDir()
	country, err := mmdbtest.WriteCountryDB(dir, map[string]string{"127.0.0.1": "PL"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := func() *Handler {
		return &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, GeoIPDB: country, Store: &StoreConfig{Type: "memory", ReservationTTL: 4242}}}
	}
	refs := func(h *Handler) (geo, store, metrics int) {
		geo, _ = geoPool.References(h.geoKey)
		store, _ = storePool.References(h.storeKey)
		metrics, _ = metricsPool.References(metricsKey)
		return
	}
	old := provisionHandler(t, cfg())
	g0, s0, m0 := refs(old)
	if g0 != 1 || s0 != 1 || m0 < 1 {
		t.Fatalf("one handler: geo %d, store %d, metrics %d references", g0, s0, m0)
	}
	next := provisionHandler(t, cfg())
	if next.geoKey != old.geoKey || next.storeKey != old.storeKey || next.metrics != old.metrics || next.store != old.store {
		t.Fatal("the second handler did not get the first one's pool entries")
	}
	if g, s, m := refs(next); g != 2 || s != 2 || m != m0+1 {
		t.Fatalf("two handlers: geo %d, store %d, metrics %d references", g, s, m)
	}
	if err := old.store.Register(t.Context(), "kept", 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil { // the old config goes
		t.Fatal(err)
	}
	if g, s, m := refs(next); g != 1 || s != 1 || m != m0 {
		t.Fatalf("after the old handler's cleanup: geo %d, store %d, metrics %d references", g, s, m)
	}
	if _, err := next.store.Get(t.Context(), "kept"); err != nil {
		t.Errorf("the store's data did not survive: %v", err)
	}
}
