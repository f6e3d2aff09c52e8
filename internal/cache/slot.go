package cache

import (
	"slices"
	"sync"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// A token is authenticated into a pooled Token whose caveat array has room
// for a token's usual caveats (more than that, and AuthenticateTo makes a
// larger array as Authenticate would), lent to the request by a
// Slot and given back once the request no longer needs it. A
// refused token then costs no allocation, and an invite the Doorkeeper
// has not seen recently, checked for one request and never cached, needs
// no Token of its own; one that the caches keep is copied out (ownToken).
// Nothing that outlives the request holds a pooled Token: the decision
// log, the headers and the placeholders keep its strings, which are
// allocated afresh for every token and never reused.

// SlotCaveats is the room a pooled Token has for caveats: Onezone's
// invites carry a handful.
const SlotCaveats = 8

type scratchToken struct {
	tok  tokens.Token
	cavs [SlotCaveats]tokens.Caveat
}

var scratchTokens = sync.Pool{New: func() any { return new(scratchToken) }}

// Slot lends one pooled Token to a request, taken on first use.
// It lives on the request's stack; Release gives the Token back, after
// which nothing may use it.
type Slot struct{ s *scratchToken }

// token returns the request's pooled Token, emptied, with its caveat
// array.
func (l *Slot) Token() *tokens.Token {
	if l.s == nil {
		l.s = scratchTokens.Get().(*scratchToken)
		l.s.tok.Caveats = l.s.cavs[:0]
	}
	return &l.s.tok
}

// release gives the Token back to the pool, cleared, so that the pool
// keeps no strings of a past request alive.
func (l *Slot) Release() {
	if l.s == nil {
		return
	}
	l.s.tok = tokens.Token{}
	clear(l.s.cavs[:])
	scratchTokens.Put(l.s)
	l.s = nil
}

// ownToken copies a Token out of a slot, caveats included, for a cache to
// keep after the slot is released.
func ownToken(t *tokens.Token) *tokens.Token {
	own := *t
	own.Caveats = slices.Clone(t.Caveats)
	return &own
}
