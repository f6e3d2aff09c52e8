package groupjoin

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// settleTimeout bounds a commit or release; they run even when the client
// has gone away, so the use is neither lost nor leaked.
const settleTimeout = 2 * time.Second

// reserve takes one use of a named invite when a store is configured.
// Temporary invites are revoked by generation and need no store.
func (h *Handler) reserve(r context.Context, invite *tokens.Token) (store.Reservation, *answer, error) {
	if h.store == nil || !invite.ID.Persistence.Named {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(r, settleTimeout)
	defer cancel()
	res, err := h.store.Reserve(ctx, invite.ID.TokenID)
	switch {
	case err == nil:
		return res, nil, nil
	case errors.Is(err, store.ErrUnknown):
		a := h.inviteAnswer(tokens.ErrUnknown, invite)
		return nil, &a, err
	case errors.Is(err, store.ErrRevoked):
		a := h.inviteAnswer(tokens.ErrRevoked, invite)
		return nil, &a, err
	case errors.Is(err, store.ErrUsedUp):
		a := h.inviteAnswer(tokens.ErrUsedUp, invite)
		return nil, &a, err
	}
	return nil, &ansUnavailable, err
}

// settle keeps the use on a join and gives it back otherwise.
func (h *Handler) settle(res store.Reservation, joined bool, d *decision) {
	if res == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	var err error
	if joined {
		err = res.Commit(ctx)
	} else {
		err = res.Release(ctx)
	}
	if err != nil {
		h.logger.Error("invite store: settling the reservation failed",
			zap.String("token_id", d.tokenID), zap.Bool("joined", joined), zap.Error(err))
	}
}
