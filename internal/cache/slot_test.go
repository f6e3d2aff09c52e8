package cache

import (
	"net/netip"
	"testing"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

func TestScratchSlot(t *testing.T) {
	var l Slot
	l.Release() // nothing taken: nothing to give back

	tok := l.Token()
	if tok.Location != "" || tok.ID.TokenID != "" || len(tok.Caveats) != 0 || cap(tok.Caveats) != SlotCaveats {
		t.Fatalf("a fresh scratch Token is %+v (caveat room %d), want empty with room %d", *tok, cap(tok.Caveats), SlotCaveats)
	}
	if l.Token() != tok {
		t.Fatal("a slot lent a second Token to the same request")
	}
	keys, _ := tokens.NewKeyring([]byte(testSecret), nil)
	if err := keys.AuthenticateTo(tok, invite(t, "g1", "ip = 10.0.0.0/8", "consumer = usr-alice")); err != nil {
		t.Fatal(err)
	}
	s := l.s
	l.Release()
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
	c := NewTokens(NewDoorkeeper())
	keys, _ := tokens.NewKeyring([]byte(testSecret), nil)
	env := &tokens.Env{Now: time.Now(), ClientIP: netip.MustParseAddr("10.1.2.3"), UserID: "alice"}
	invs := make([]string, 60)
	for i := range invs {
		invs[i] = invite(t, "g"+itoa(i), tokens.TimeCaveat(env.Now.Add(time.Hour)), "ip = 10.0.0.0/8", "consumer = usr-alice")
	}
	next := 0
	var l Slot
	allocs := testing.AllocsPerRun(len(invs)-2, func() {
		tok, err := c.Verify(invs[next], env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite)
		next++
		if err != nil {
			t.Fatalf("verify = %v", err)
		}
		if tok != &l.s.tok {
			t.Fatal("a first-sight invite was not written into the scratch Token")
		}
		l.Release()
	})
	switch {
	case raceDetector && allocs > 2:
		t.Fatalf("a first-sight invite allocated %v times under -race, want 1 (its strings) and pooled objects the detector dropped", allocs)
	case !raceDetector && allocs != 1:
		t.Fatalf("a first-sight invite allocated %v times, want 1 (its strings)", allocs)
	}

	again := invs[0] // seen once above: cached now
	tok, _ := c.Verify(again, env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite)
	if l.s != nil && (tok == &l.s.tok || &tok.Caveats[0] == &l.s.cavs[0]) {
		t.Fatal("an invite seen again was left in the scratch Token, which the cache would then keep")
	}
	if e, _, _ := c.Passed.Stats(); e != 1 {
		t.Fatalf("the cache holds %d invites, want the one seen again", e)
	}
	// The slot goes back to the pool and is lent again; the cached Token
	// stays what Authenticate makes of the invite.
	l.Release()
	want, _ := keys.Authenticate(again)
	for range 3 {
		var other Slot
		if _, err := c.Verify(invite(t, "other", "consumer = usr-alice"), env, &other, keys.AuthenticateTo, (*tokens.Token).CheckInvite); err != nil {
			t.Fatal(err)
		}
		other.Release()
	}
	cached, err := c.Verify(again, env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite)
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
	l.Release()
}

// A token refused by Authenticate costs no allocation, whether it comes
// for the first time (not cached) or again (cached as refused): it was
// written into the pooled Token, never into one of its own.
func TestRefusedTokensAllocateNoToken(t *testing.T) {
	c := NewTokens(NewDoorkeeper())
	keys, _ := tokens.NewKeyring([]byte(testSecret), nil)
	env := &tokens.Env{Now: time.Now(), UserID: "alice"}
	forged := make([]string, 40)
	for i := range forged {
		forged[i] = mintT(t, "another secret", tokens.InviteID(tokens.Persistence{Named: true}, "bob", "g", tokens.NewTokenID()))
	}
	next := 0
	first := testing.AllocsPerRun(len(forged)-2, func() {
		var l Slot
		if _, err := c.Verify(forged[next], env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite); err != tokens.ErrSignature {
			t.Fatalf("verify = %v, want ErrSignature", err)
		}
		next++
		l.Release()
	})
	if !raceDetector && first != 0 {
		t.Fatalf("a forged invite seen once allocated %v times, want none", first)
	}
	// Seen again: looked up, missed, authenticated into the slot too, and
	// cached as refused (the refused cache keeps the error, no Token).
	var l Slot
	if _, err := c.Verify(forged[0], env, &l, keys.AuthenticateTo, (*tokens.Token).CheckInvite); err != tokens.ErrSignature {
		t.Fatalf("second sight: %v", err)
	}
	if l.s == nil {
		t.Fatal("a token seen again was not authenticated into the slot")
	}
	l.Release()
}
