package groupjoin

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

func usageInvite(named bool, id string) *tokens.Token {
	p := tokens.Persistence{Named: named, Generation: 1}
	return &tokens.Token{ID: tokens.InviteID(p, "bob", "g1", id)}
}

// reserve and settle against a real memory store: a registered named
// invite gives one use per reservation; a release gives it back, a commit
// keeps it; unknown and used-up invites get their documented answers.
func TestReserveAndSettle(t *testing.T) {
	h := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}, Store: &StoreConfig{Type: "memory"}}})
	ctx := context.Background()
	if err := h.store.Register(ctx, "once", 1, 0); err != nil {
		t.Fatal(err)
	}
	d := &decision{tokenID: "once"}

	res, a, err := h.reserve(ctx, usageInvite(true, "once"))
	if a != nil || err != nil || res == nil {
		t.Fatalf("first reservation: %v, %v, %v", res, a, err)
	}
	h.settle(res, false, d) // the backend refused: the use comes back
	res, a, err = h.reserve(ctx, usageInvite(true, "once"))
	if a != nil || err != nil {
		t.Fatalf("reservation after a release: %v, %v", a, err)
	}
	h.settle(res, true, d) // joined: the use is kept
	if inv, err := h.store.Get(ctx, "once"); err != nil || inv.Used != 1 || inv.Reserved != 0 {
		t.Fatalf("after a commit: %+v, %v", inv, err)
	}

	for _, c := range []struct {
		id   string
		want error
		desc string
	}{
		{"once", store.ErrUsedUp, "Invite token usage limit has been reached."},
		{"never-registered", store.ErrUnknown, "Invite token is not registered."},
	} {
		res, a, err := h.reserve(ctx, usageInvite(true, c.id))
		if res != nil || a == nil || !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, %v, %v; want %v", c.id, res, a, err, c.want)
		}
		if a.status != http.StatusBadRequest || a.code != "invalid_token" || a.desc != c.desc {
			t.Errorf("%s: answer %+v", c.id, *a)
		}
	}
	if err := h.store.Revoke(ctx, "once"); err != nil {
		t.Fatal(err)
	}
	if _, a, err := h.reserve(ctx, usageInvite(true, "once")); a == nil || a.desc != "Invite token has been revoked." || !errors.Is(err, store.ErrRevoked) {
		t.Errorf("revoked: %v, %v", a, err)
	}

	// Temporary invites are revoked by generation: no store involved.
	if res, a, err := h.reserve(ctx, usageInvite(false, "tmp")); res != nil || a != nil || err != nil {
		t.Errorf("temporary invite: %v, %v, %v", res, a, err)
	}
	h.settle(nil, true, d) // nothing reserved: nothing to do
}

// Without a store, named invites are limited by their caveats only.
func TestReserveWithoutStore(t *testing.T) {
	h := provisionHandler(t, &Handler{Shared: Shared{Keys: []Key{{Secret: testSecret}}}})
	if res, a, err := h.reserve(context.Background(), usageInvite(true, "x")); res != nil || a != nil || err != nil {
		t.Errorf("no store: %v, %v, %v", res, a, err)
	}
}
