package groupjoin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cache"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// The access-token cache must change nothing but the cost: a cached token
// is still refused once its time caveat passes, its ip caveat is still
// checked on every request, tokens of a generation a reload removed are
// refused, and the cache stays bounded.

// cacheFixture is a provisioned handler with a test clock and a backend
// that counts what reaches it.
type cacheFixture struct {
	h       *Handler
	clk     *clock
	forward int
	next    caddyhttp.Handler
}

func newCacheFixture(t *testing.T) *cacheFixture {
	f := &cacheFixture{clk: &clock{time.Unix(1_900_000_000, 0)}}
	f.h = provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}}})
	f.h.clock = f.clk.now
	f.next = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		f.forward++
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	return f
}

func (f *cacheFixture) join(t *testing.T, ip, user string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	// A fresh invite every time: only the access token repeats.
	body := joinBody(invite(t, "g1", tokens.TimeCaveat(f.clk.t.Add(time.Hour))))
	if err := f.h.ServeHTTP(w, handlerRequest(ip, user, body), f.next); err != nil {
		t.Fatal(err)
	}
	return w
}

// expect checks a 201, or the documented error with code and a
// description containing desc.
func (f *cacheFixture) expect(t *testing.T, w *httptest.ResponseRecorder, status int, code, desc string) {
	t.Helper()
	if status == http.StatusCreated {
		if w.Code != status {
			t.Fatalf("status %d body %q, want %d", w.Code, w.Body.String(), status)
		}
		return
	}
	checkDocumented(t, w.Result(), w.Body.Bytes(), status, code, desc)
}

// stats asserts the access tokens' passed cache's counters.
func (f *cacheFixture) stats(t *testing.T, entries int, hits, misses uint64) {
	t.Helper()
	expectCacheStats(t, "access token cache", f.h.access.Passed, entries, hits, misses)
}

func expectCacheStats(t *testing.T, name string, c *cache.TokenCache, entries int, hits, misses uint64) {
	t.Helper()
	e, h, m := c.Stats()
	if e != entries || h != hits || m != misses {
		t.Fatalf("%s: %d entries, %d hits, %d misses; want %d, %d, %d", name, e, h, m, entries, hits, misses)
	}
}

func TestAccessCacheHonoursTimeCaveat(t *testing.T) {
	f := newCacheFixture(t)
	t0 := f.clk.t
	user := access(t, "alice", tokens.TimeCaveat(t0.Add(time.Minute)))

	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	f.stats(t, 1, 0, 1)
	f.clk.t = t0.Add(59 * time.Second)
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	f.stats(t, 1, 1, 1) // served from the cache

	// The time caveat passes: refused, although the token was cached.
	f.clk.t = t0.Add(time.Minute)
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusUnauthorized, "invalid_token", "expired")
	f.clk.t = t0.Add(time.Hour)
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusUnauthorized, "invalid_token", "expired")
	if f.forward != 2 {
		t.Fatalf("%d requests forwarded, want 2", f.forward)
	}
	// Refused tokens are not cached again.
	if e, _, _ := f.h.access.Passed.Stats(); e > 1 {
		t.Fatalf("%d entries after the token expired", e)
	}
}

func TestAccessCacheEntryNeverOutlivesTTL(t *testing.T) {
	f := newCacheFixture(t)
	t0 := f.clk.t
	user := access(t, "alice") // no time caveat at all
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	f.clk.t = t0.Add(cache.TokenTTL - time.Second)
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	f.stats(t, 1, 1, 1)
	// After the TTL the token is verified again (a miss), then cached anew.
	f.clk.t = t0.Add(cache.TokenTTL)
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	f.stats(t, 1, 1, 2)
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	f.stats(t, 1, 2, 2)
}

func TestAccessCacheChecksIPCaveatPerRequest(t *testing.T) {
	f := newCacheFixture(t)
	user := access(t, "alice", "ip = 192.0.2.0/24")
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	f.expect(t, f.join(t, "192.0.2.77", user), http.StatusCreated, "", "")
	f.stats(t, 1, 1, 1)
	// Same cached token from another address: refused, from the cache.
	f.expect(t, f.join(t, "198.51.100.1", user), http.StatusUnauthorized, "invalid_token", "")
	f.stats(t, 1, 2, 1)
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	if f.forward != 3 {
		t.Fatalf("%d requests forwarded, want 3", f.forward)
	}
}

func TestAccessCacheKeepsOnlyValidTokens(t *testing.T) {
	f := newCacheFixture(t)
	forged := mintT(t, "another secret", tokens.AccessID(tokens.Persistence{Named: true}, "alice", "", "t1"))
	inviteAsUser := invite(t, "g1")
	wrongService := access(t, "alice", "service = ozw-elsewhere")
	for _, tok := range []string{forged, forged, inviteAsUser, inviteAsUser, wrongService, wrongService} {
		f.expect(t, f.join(t, "192.0.2.1", tok), http.StatusUnauthorized, "invalid_token", "")
	}
	if e, h, _ := f.h.access.Passed.Stats(); e != 0 || h != 0 {
		t.Fatalf("refused tokens in the cache: %d entries, %d hits", e, h)
	}
	// A token that differs from a cached one is its own entry: the cache
	// never answers for a token it has not verified.
	user := access(t, "alice")
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	tampered := user[:len(user)-2] + "AA"
	if tampered == user {
		tampered = user[:len(user)-2] + "BB"
	}
	f.expect(t, f.join(t, "192.0.2.1", tampered), http.StatusUnauthorized, "invalid_token", "")
}

// A reload that removes a generation's key refuses that generation's
// access tokens at once, even those the old config had cached: each
// provisioned handler has a cache of its own.
func TestAccessCacheRevokedGenerationAfterReload(t *testing.T) {
	user1 := mintT(t, "cache-gen-secret-1", tokens.AccessID(tokens.Persistence{Generation: 1}, "alice", "", tokens.NewTokenID()))
	user2 := mintT(t, "cache-gen-secret-2", tokens.AccessID(tokens.Persistence{Generation: 2}, "carol", "", tokens.NewTokenID()))

	s := startSite(t, generationKeys(1, 2))
	for range 3 { // the first request caches the tokens, the others use the cache
		for _, u := range []string{user1, user2} {
			if resp := s.join(joinBody(invite(t, "g1")), "X-Auth-Token", u); resp.StatusCode != http.StatusCreated {
				t.Fatalf("before the reload: status %d body %s", resp.StatusCode, bodyOf(resp))
			}
		}
	}
	s = startSite(t, generationKeys(2)) // generation 1 revoked
	resp := s.join(joinBody(invite(t, "g1")), "X-Auth-Token", user1)
	expectError(t, resp, http.StatusUnauthorized, "invalid_token")
	if resp := s.join(joinBody(invite(t, "g1")), "X-Auth-Token", user2); resp.StatusCode != http.StatusCreated {
		t.Fatalf("generation 2 after the reload: status %d body %s", resp.StatusCode, bodyOf(resp))
	}
	if n := len(s.backend.requests()); n != 1 {
		t.Fatalf("%d requests reached the backend after the reload, want 1", n)
	}
}

// The same handler instance cannot serve a cached token once its keyring
// no longer verifies it: Provision builds the cache with the keyring.
func TestAccessCacheBelongsToItsHandler(t *testing.T) {
	f := newCacheFixture(t)
	user := access(t, "alice")
	f.expect(t, f.join(t, "192.0.2.1", user), http.StatusCreated, "", "")
	other := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: "a different secret"}}}})
	w := httptest.NewRecorder()
	if err := other.ServeHTTP(w, handlerRequest("192.0.2.1", user, joinBody(invite(t, "g1"))), f.next); err != nil {
		t.Fatal(err)
	}
	f.expect(t, w, http.StatusUnauthorized, "invalid_token", "")
	if e, _, _ := other.access.Passed.Stats(); e != 0 {
		t.Fatalf("new handler's cache has %d entries", e)
	}
}

// The invite cache must change nothing but the cost either: a cached
// invite is refused once its time caveat passes, its ip and consumer
// caveats are checked for every request, the store still counts its uses
// and revocations, and only invites that passed every check are cached.

// joinInvite sends inv as user from ip through the fixture's handler.
func (f *cacheFixture) joinInvite(t *testing.T, ip, user, inv string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := f.h.ServeHTTP(w, handlerRequest(ip, user, joinBody(inv)), f.next); err != nil {
		t.Fatal(err)
	}
	return w
}

func (f *cacheFixture) inviteStats(t *testing.T, entries int, hits, misses uint64) {
	t.Helper()
	expectCacheStats(t, "invite cache", f.h.invites.Passed, entries, hits, misses)
}

func TestInviteCacheHonoursTimeCaveat(t *testing.T) {
	f := newCacheFixture(t)
	t0 := f.clk.t
	inv := invite(t, "g1", tokens.TimeCaveat(t0.Add(time.Minute)))
	f.seenOnce(inv)
	for _, u := range []string{"alice", "carol"} {
		f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, u), inv), http.StatusCreated, "", "")
	}
	f.inviteStats(t, 1, 1, 1)
	f.clk.t = t0.Add(time.Minute)
	f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, "dave"), inv), http.StatusBadRequest, "invalid_token", "Invite token has expired.")
	if f.forward != 2 {
		t.Fatalf("%d requests forwarded, want 2", f.forward)
	}
	// The entry is dead at the time caveat, not only refused by it.
	if f.h.invites.Passed.Holds(inv, f.clk.t) {
		t.Fatal("an expired invite is still served by the cache")
	}
}

func TestInviteCacheTTL(t *testing.T) {
	f := newCacheFixture(t)
	inv := invite(t, "g1") // no time caveat
	f.seenOnce(inv)
	f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, "alice"), inv), http.StatusCreated, "", "")
	f.clk.t = f.clk.t.Add(cache.TokenTTL - time.Second)
	f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, "carol"), inv), http.StatusCreated, "", "")
	f.inviteStats(t, 1, 1, 1)
	f.clk.t = f.clk.t.Add(time.Second)
	f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, "dave"), inv), http.StatusCreated, "", "")
	f.inviteStats(t, 1, 1, 2) // verified again, then cached again
}

func TestInviteCacheChecksCaveatsOnEveryRequest(t *testing.T) {
	f := newCacheFixture(t)
	alice, carol := access(t, "alice"), access(t, "carol")
	inv := invite(t, "g1", "ip = 192.0.2.0/24", "consumer = usr-alice")
	f.seenOnce(inv)
	f.expect(t, f.joinInvite(t, "192.0.2.1", alice, inv), http.StatusCreated, "", "")
	f.expect(t, f.joinInvite(t, "198.51.100.7", alice, inv), http.StatusBadRequest, "invalid_token", genericInviteDesc)
	f.expect(t, f.joinInvite(t, "192.0.2.9", carol, inv), http.StatusForbidden, "forbidden", "not meant for the current user")
	f.expect(t, f.joinInvite(t, "192.0.2.9", alice, inv), http.StatusCreated, "", "")
	f.inviteStats(t, 1, 3, 1)
	if f.forward != 2 {
		t.Fatalf("%d requests forwarded, want 2", f.forward)
	}
}

func TestInviteCacheRefusedNeverCached(t *testing.T) {
	f := newCacheFixture(t)
	alice := access(t, "alice")
	forged := mintT(t, "another secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", tokens.NewTokenID()))
	bound := invite(t, "g1", "consumer = usr-carol")
	accessTok := access(t, "dave")
	f.seenOnce(forged, bound, accessTok)
	for range 2 {
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, forged), http.StatusBadRequest, "invalid_token", genericInviteDesc)
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, bound), http.StatusForbidden, "forbidden", "")
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, accessTok), http.StatusBadRequest, "invalid_token", "not a group invite")
	}
	f.inviteStats(t, 0, 0, 6)
	if f.forward != 0 {
		t.Fatalf("%d refused requests forwarded", f.forward)
	}
}

// Uses and revocations live in the store, which is asked on every request,
// cached invite or not.
func TestInviteCacheStoreStillDecides(t *testing.T) {
	f := &cacheFixture{clk: &clock{time.Unix(1_900_000_000, 0)}}
	f.h = provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, Store: &StoreConfig{Type: "memory"}}})
	f.h.clock = f.clk.now
	forwarded := 0
	f.next = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		forwarded++
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	ctx := context.Background()
	mint := func() (string, string) {
		id := tokens.NewTokenID()
		return mintT(t, testSecret, tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", id)), id
	}
	once, onceID := mint()
	f.seenOnce(once)
	if err := f.h.store.Register(ctx, onceID, 1, 0); err != nil {
		t.Fatal(err)
	}
	f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, "alice"), once), http.StatusCreated, "", "")
	f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, "carol"), once), http.StatusBadRequest, "invalid_token", "usage limit")

	revoked, revokedID := mint()
	f.seenOnce(revoked)
	if err := f.h.store.Register(ctx, revokedID, 10, 0); err != nil {
		t.Fatal(err)
	}
	f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, "alice"), revoked), http.StatusCreated, "", "")
	if err := f.h.store.Revoke(ctx, revokedID); err != nil {
		t.Fatal(err)
	}
	f.expect(t, f.joinInvite(t, "192.0.2.1", access(t, "carol"), revoked), http.StatusBadRequest, "invalid_token", "revoked")
	f.inviteStats(t, 2, 2, 2)
	if forwarded != 2 {
		t.Fatalf("%d requests forwarded, want 2", forwarded)
	}
}

// A reload that removes a generation's key refuses that generation's
// invites at once, even those the old config had cached.
func TestInviteCacheRevokedGenerationAfterReload(t *testing.T) {
	inv1 := mintT(t, "cache-gen-secret-1", tokens.InviteID(tokens.Persistence{Generation: 1}, "bob", "g1", tokens.NewTokenID()))
	inv2 := mintT(t, "cache-gen-secret-2", tokens.InviteID(tokens.Persistence{Generation: 2}, "bob", "g1", tokens.NewTokenID()))
	users := []string{access(t, "alice"), access(t, "carol"), access(t, "dave")}

	s := startSite(t, generationKeys(1, 2))
	for _, u := range users { // the second request caches the invites, the third uses the cache
		for _, inv := range []string{inv1, inv2} {
			if resp := s.join(joinBody(inv), "X-Auth-Token", u); resp.StatusCode != http.StatusCreated {
				t.Fatalf("before the reload: status %d body %s", resp.StatusCode, bodyOf(resp))
			}
		}
	}
	s = startSite(t, generationKeys(2)) // generation 1 revoked
	expectError(t, s.join(joinBody(inv1), "X-Auth-Token", users[0]), http.StatusBadRequest, "invalid_token")
	if resp := s.join(joinBody(inv2), "X-Auth-Token", users[0]); resp.StatusCode != http.StatusCreated {
		t.Fatalf("generation 2 after the reload: status %d body %s", resp.StatusCode, bodyOf(resp))
	}
	if n := len(s.backend.requests()); n != 1 {
		t.Fatalf("%d requests reached the backend after the reload, want 1", n)
	}
}

// A handler with caches answers every request exactly as one without them:
// tokens that passed, tokens refused by Authenticate (forged, truncated,
// wrong type) and tokens refused by a caveat that depends on the request,
// the clock or the caller, each seen again and again (three times: an
// invite is cached from its second sight).
func TestTokenCachesAnswerLikeNoCache(t *testing.T) {
	cached, plain := newCacheFixture(t), newCacheFixture(t)
	plain.h.access, plain.h.invites = nil, nil
	plain.clk = cached.clk
	plain.h.clock = cached.clk.now
	t0 := cached.clk.t

	valid := invite(t, "g1")
	forgedInvite := mintT(t, "another secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", tokens.NewTokenID()))
	invites := map[string]string{
		"valid":       valid,
		"ip-bound":    invite(t, "g1", "ip = 192.0.2.0/24"),
		"for alice":   invite(t, "g1", "consumer = usr-alice"),
		"short-lived": invite(t, "g1", tokens.TimeCaveat(t0.Add(time.Minute))),
		"forged":      forgedInvite,
		"truncated":   valid[:len(valid)/2],
		"access":      access(t, "alice"),
	}
	users := map[string]string{
		"alice":       access(t, "alice"),
		"carol":       access(t, "carol"),
		"forged":      mintT(t, "another secret", tokens.AccessID(tokens.Persistence{Named: true}, "alice", "", tokens.NewTokenID())),
		"short-lived": access(t, "dave", tokens.TimeCaveat(t0.Add(time.Minute))),
		"ip-bound":    access(t, "erin", "ip = 198.51.100.0/24"),
		"an invite":   valid,
	}
	serve := func(f *cacheFixture, ip, user, inv string) (int, string) {
		w := f.joinInvite(t, ip, user, inv)
		return w.Code, w.Body.String()
	}
	n := 0
	for _, at := range []time.Time{t0, t0.Add(2 * time.Minute)} {
		cached.clk.t = at
		for _, ip := range []string{"192.0.2.1", "198.51.100.7"} {
			for un, user := range users {
				for in, inv := range invites {
					wantCode, wantBody := serve(plain, ip, user, inv)
					for try := range 3 {
						code, body := serve(cached, ip, user, inv)
						if code != wantCode || body != wantBody {
							t.Fatalf("%s, %s, user %s, invite %s, try %d: cached %d %s, uncached %d %s",
								at.Sub(t0), ip, un, in, try, code, body, wantCode, wantBody)
						}
						n++
					}
				}
			}
		}
	}
	if cached.forward != plain.forward*3 {
		t.Fatalf("forwarded %d with caches, %d without (want three times as many: every request sent three times)", cached.forward, plain.forward)
	}
	if plain.forward == 0 {
		t.Fatal("nothing was admitted: the table does not test the cached path")
	}
	// Both caches of both kinds served answers.
	for name, c := range map[string]*cache.TokenCache{
		"access passed": cached.h.access.Passed, "access refused": cached.h.access.Refused,
		"invite passed": cached.h.invites.Passed, "invite refused": cached.h.invites.Refused,
	} {
		if _, hits, _ := c.Stats(); hits == 0 {
			t.Errorf("%s: no hits in %d requests", name, n)
		}
	}
}

// Junk, which anyone can send, lands in the refused cache and never evicts
// a token that passed.
func TestRefusedTokensNeverEvictPassed(t *testing.T) {
	f := newCacheFixture(t)
	alice := access(t, "alice")
	good := invite(t, "g1")
	f.seenOnce(good)
	f.expect(t, f.joinInvite(t, "192.0.2.1", alice, good), http.StatusCreated, "", "")
	junk := invite(t, "g1")
	for i := range 2 * cache.TokenCacheSize {
		// Distinct, well-formed-looking invites with a broken signature.
		bad := junk[:len(junk)-8] + strconv.Itoa(10_000_000 + i)[:8]
		if bad == junk {
			continue
		}
		// Junk replayed: past the doorkeeper, into the refused cache.
		f.seenOnce(bad)
		w := f.joinInvite(t, "192.0.2.1", alice, bad)
		if w.Code != http.StatusBadRequest {
			t.Fatalf("junk %d answered %d %s", i, w.Code, w.Body.String())
		}
	}
	if e, _, _ := f.h.invites.Refused.Stats(); e > cache.TokenCacheSize {
		t.Fatalf("refused cache grew to %d entries, bound %d", e, cache.TokenCacheSize)
	}
	e, hits, _ := f.h.invites.Passed.Stats()
	// So much junk made the doorkeeper forget the good invite; the cache
	// must still hold it.
	f.seenOnce(good)
	f.expect(t, f.joinInvite(t, "192.0.2.1", alice, good), http.StatusCreated, "", "")
	if _, hits2, _ := f.h.invites.Passed.Stats(); e != 1 || hits2 != hits+1 {
		t.Fatalf("the good invite left the cache: %d entries, hits %d → %d", e, hits, hits2)
	}
}

// generationKeys is a group_join key block: the default key, and a key
// "cache-gen-secret-<g>" for each generation g.
func generationKeys(gens ...int) string {
	var b strings.Builder
	b.WriteString("key " + testSecret)
	for _, g := range gens {
		b.WriteString("\n\t\tkey " + strconv.Itoa(g) + " cache-gen-secret-" + strconv.Itoa(g))
	}
	return b.String()
}

// Through the handler: invites that never come back leave the invite
// caches untouched, an invite that comes back is cached from its second
// sight and served by the cache from its third, and the answers are
// those of a handler without caches (TestTokenCachesAnswerLikeNoCache).
func TestInviteCacheAdmitsReturningInvites(t *testing.T) {
	f := newCacheFixture(t)
	alice := access(t, "alice")
	for range 50 {
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, invite(t, "g1")), http.StatusCreated, "", "")
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, invite(t, "g1", "consumer = usr-carol")), http.StatusForbidden, "forbidden", "")
		forged := mintT(t, "another secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g1", tokens.NewTokenID()))
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, forged), http.StatusBadRequest, "invalid_token", genericInviteDesc)
	}
	f.inviteStats(t, 0, 0, 0)
	expectCacheStats(t, "refused invite cache", f.h.invites.Refused, 0, 0, 0)

	shared := invite(t, "g1", tokens.TimeCaveat(f.clk.t.Add(time.Hour)))
	for i, want := range []struct {
		entries      int
		hits, misses uint64
	}{{0, 0, 0}, {1, 0, 1}, {1, 1, 1}, {1, 2, 1}} {
		f.expect(t, f.joinInvite(t, "192.0.2.1", alice, shared), http.StatusCreated, "", "")
		e, h, m := f.h.invites.Passed.Stats()
		if e != want.entries || h != want.hits || m != want.misses {
			t.Fatalf("sight %d: %d entries, %d hits, %d misses; want %+v", i+1, e, h, m, want)
		}
	}
}

// seenOnce makes the fixture's invite doorkeeper remember invs as if
// each had been presented once already, so that the next presentation
// goes through the caches: for tests of what the caches do.
func (f *cacheFixture) seenOnce(invs ...string) {
	for _, inv := range invs {
		f.h.invites.Door.FirstSight(inv)
	}
}

// Requests running at once, each with an invite the edge has never seen,
// each get their own invite's values in the headers the backend sees, in
// the placeholders, in the answer and in the decision log, also after the
// scratch Token went back to the pool and was lent to another request.
func TestScratchTokensNotSharedAcrossRequests(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	h := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}}})
	h.logger = zap.New(core)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		w.Header().Set("X-Seen", r.Header.Get("X-Group-Id")+" "+r.Header.Get("X-User-Id")+" "+
			repl.ReplaceAll("{http.group_join.group_id} {http.group_join.token_id}", "?"))
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	const workers, each = 4, 40
	type want struct{ user, group, tokenID, body string }
	jobs := make([][]want, workers)
	for g := range workers {
		user := fmt.Sprintf("user%d", g)
		for i := range each {
			group := fmt.Sprintf("grp-%d-%d", g, i)
			id := tokens.InviteID(tokens.Persistence{Named: true}, "bob", group, tokens.NewTokenID())
			inv := mintT(t, testSecret, id, "consumer = usr-"+user)
			jobs[g] = append(jobs[g], want{user, group, id.TokenID, joinBody(inv)})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for g := range workers {
		acc := access(t, jobs[g][0].user)
		wg.Go(func() {
			for _, j := range jobs[g] {
				w := httptest.NewRecorder()
				if err := h.ServeHTTP(w, handlerRequest("192.0.2.1", acc, j.body), next); err != nil {
					errs <- err.Error()
					continue
				}
				seen := j.group + " " + j.user + " " + j.group + " " + j.tokenID
				switch {
				case w.Code != http.StatusCreated:
					errs <- fmt.Sprintf("%s: status %d %s", j.group, w.Code, w.Body.String())
				case w.Header().Get("X-Seen") != seen:
					errs <- fmt.Sprintf("backend saw %q, want %q", w.Header().Get("X-Seen"), seen)
				case w.Header().Get("Location") != "/user/groups/"+j.group:
					errs <- fmt.Sprintf("%s: Location %q", j.group, w.Header().Get("Location"))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	byGroup := map[string]map[string]any{}
	for _, e := range logs.FilterMessage("group join").All() {
		f := e.ContextMap()
		byGroup[fmt.Sprint(f["group_id"])] = f
	}
	for g := range workers {
		for _, j := range jobs[g] {
			f := byGroup[j.group]
			if f == nil || f["outcome"] != "joined" || f["user_id"] != j.user || f["token_id"] != j.tokenID {
				t.Errorf("decision log for %s: %v, want joined by %s with token %s", j.group, f, j.user, j.tokenID)
			}
		}
	}
}
