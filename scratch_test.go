package groupjoin

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

func TestScratchSlot(t *testing.T) {
	var l scratchSlot
	l.release() // nothing taken: nothing to give back

	tok := l.token()
	if tok.Location != "" || tok.ID.TokenID != "" || len(tok.Caveats) != 0 || cap(tok.Caveats) != scratchCaveats {
		t.Fatalf("a fresh scratch Token is %+v (caveat room %d), want empty with room %d", *tok, cap(tok.Caveats), scratchCaveats)
	}
	if l.token() != tok {
		t.Fatal("a slot lent a second Token to the same request")
	}
	keys, _ := tokens.NewKeyring([]byte(testSecret), nil)
	if err := keys.AuthenticateTo(tok, invite(t, "g1", "ip = 10.0.0.0/8", "consumer = usr-alice")); err != nil {
		t.Fatal(err)
	}
	s := l.s
	l.release()
	if l.s != nil {
		t.Fatal("the slot still holds its Token after release")
	}
	// Given back cleared: the pool keeps no strings of the request.
	if s.tok.ID.TokenID != "" || s.tok.Caveats != nil || s.cavs[0].Raw != "" || s.cavs[1].Raw != "" {
		t.Fatalf("a released scratch Token still holds %+v / %+v", s.tok, s.cavs[:2])
	}
}

// An invite seen once is authenticated into the request's scratch Token
// and allocates nothing but its strings on the way; one seen again (and so
// cached) gets a Token of its own, which the cache keeps.
func TestScratchTokenOnlyForFirstSight(t *testing.T) {
	c := newTokenCaches(newDoorkeeper())
	keys, _ := tokens.NewKeyring([]byte(testSecret), nil)
	env := &tokens.Env{Now: time.Now(), ClientIP: netip.MustParseAddr("10.1.2.3"), UserID: "alice"}
	invs := make([]string, 60)
	for i := range invs {
		invs[i] = invite(t, "g"+itoa(i), tokens.TimeCaveat(env.Now.Add(time.Hour)), "ip = 10.0.0.0/8", "consumer = usr-alice")
	}
	next := 0
	var l scratchSlot
	allocs := testing.AllocsPerRun(len(invs)-2, func() {
		tok, err := c.verify(invs[next], env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite)
		next++
		if err != nil {
			t.Fatalf("verify = %v", err)
		}
		if tok != &l.s.tok {
			t.Fatal("a first-sight invite was not written into the scratch Token")
		}
		l.release()
	})
	switch {
	case raceDetector && allocs > 2:
		t.Fatalf("a first-sight invite allocated %v times under -race, want 1 (its strings) and pooled objects the detector dropped", allocs)
	case !raceDetector && allocs != 1:
		t.Fatalf("a first-sight invite allocated %v times, want 1 (its strings)", allocs)
	}

	again := invs[0] // seen once above: cached now
	tok, _ := c.verify(again, env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite)
	if l.s != nil && (tok == &l.s.tok || &tok.Caveats[0] == &l.s.cavs[0]) {
		t.Fatal("an invite seen again was left in the scratch Token, which the cache would then keep")
	}
	if e, _, _ := c.passed.stats(); e != 1 {
		t.Fatalf("the cache holds %d invites, want the one seen again", e)
	}
	// The slot goes back to the pool and is lent again; the cached Token
	// stays what Authenticate makes of the invite.
	l.release()
	want, _ := keys.Authenticate(again)
	for range 3 {
		var other scratchSlot
		if _, err := c.verify(invite(t, "other", "consumer = usr-alice"), env, &other, keys.AuthenticateTo, (*tokens.Token).CheckInvite); err != nil {
			t.Fatal(err)
		}
		other.release()
	}
	cached, err := c.verify(again, env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite)
	if err != nil || cached != tok {
		t.Fatalf("third sight: %v, token %p, want the cached %p", err, cached, tok)
	}
	if len(cached.Caveats) != len(want.Caveats) || cached.ID != want.ID {
		t.Fatalf("cached token changed: %+v, want %+v", *cached, *want)
	}
	for i := range want.Caveats {
		if cached.Caveats[i] != want.Caveats[i] {
			t.Fatalf("cached caveat %d changed to %+v, want %+v", i, cached.Caveats[i], want.Caveats[i])
		}
	}
	l.release()
}

// A token refused by Authenticate costs no allocation, whether it comes
// for the first time (not cached) or again (cached as refused): it was
// written into the pooled Token, never into one of its own.
func TestRefusedTokensAllocateNoToken(t *testing.T) {
	c := newTokenCaches(newDoorkeeper())
	keys, _ := tokens.NewKeyring([]byte(testSecret), nil)
	env := &tokens.Env{Now: time.Now(), UserID: "alice"}
	forged := make([]string, 40)
	for i := range forged {
		forged[i] = mintT(t, "another secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g", tokens.NewTokenID()))
	}
	next := 0
	first := testing.AllocsPerRun(len(forged)-2, func() {
		var l scratchSlot
		if _, err := c.verify(forged[next], env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite); err != tokens.ErrSignature {
			t.Fatalf("verify = %v, want ErrSignature", err)
		}
		next++
		l.release()
	})
	if !raceDetector && first != 0 {
		t.Fatalf("a forged invite seen once allocated %v times, want none", first)
	}
	// Seen again: looked up, missed, authenticated into the slot too, and
	// cached as refused (the refused cache keeps the error, no Token).
	var l scratchSlot
	if _, err := c.verify(forged[0], env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite); err != tokens.ErrSignature {
		t.Fatalf("second sight: %v", err)
	}
	if l.s == nil {
		t.Fatal("a token seen again was not authenticated into the slot")
	}
	l.release()
}

// Requests running at once, each with an invite the edge has never seen,
// each get their own invite's values in the headers the backend sees, in
// the placeholders, in the answer and in the decision log, also after the
// scratch Token went back to the pool and was lent to another request.
func TestScratchTokensNotSharedAcrossRequests(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	h := provisionHandler(t, &Handler{Keys: []Key{{Secret: testSecret}}})
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
