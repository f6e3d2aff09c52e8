package groupjoin

import (
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cache"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// caller is the current user as established by an identity source.
type caller struct {
	userID    string
	fromToken bool // identity came from an access token
}

// identify tries the identity sources in order. A source that finds no
// credentials passes to the next; one that finds credentials that fail
// decides at once (401 invalid_token). No source at all: 401 unauthorized.
func (h *Handler) identify(r *http.Request, repl *caddy.Replacer, env *tokens.Env) (caller, *answer, error) {
	for _, src := range h.identity {
		switch src.Source {
		case SourceAccessToken:
			raw, present, ok := accessTokenFrom(r.Header)
			if !present {
				continue
			}
			if !ok {
				return caller{}, &ansBadUser, errAmbiguousCredentials
			}
			who, err := h.verifyAccess(raw, env)
			if err != nil {
				a := h.userAnswer(err)
				return caller{}, &a, err
			}
			return who, nil, nil
		case SourcePlaceholder:
			id := repl.ReplaceAll(src.Placeholder, "")
			if id == "" {
				continue
			}
			if !tokens.ValidID(id) {
				return caller{}, &ansBadUser, errBadUserID
			}
			return caller{userID: id}, nil, nil
		}
	}
	return caller{}, &ansNoUser, nil
}

// verifyAccess is Verifier.VerifyAccess with the caches in front of
// Authenticate, answering whom the token names.
func (h *Handler) verifyAccess(raw string, env *tokens.Env) (caller, error) {
	var slot cache.Slot // the token while it is checked
	defer slot.Release()
	tok, err := h.access.Verify(raw, env, &slot, h.verifier.Keys.AuthenticateTo, (*tokens.Token).CheckAccess)
	if err != nil {
		if tok != nil && !tok.ID.Legacy && tok.ID.Type.Kind == tokens.TypeAccess && tok.ID.Subject.Kind != "usr" {
			return caller{}, &notUserError{tok.ID.Subject, err}
		}
		return caller{}, err
	}
	return caller{userID: tok.ID.Subject.ID, fromToken: true}, nil
}

// accessTokenFrom finds the access token in X-Auth-Token, else
// Authorization: Bearer, else Macaroon. present reports whether any of
// them carries credentials; ok is false when the credentials are ambiguous
// (a header repeated) or empty.
func accessTokenFrom(h http.Header) (tok string, present, ok bool) {
	if v := h.Values("X-Auth-Token"); len(v) > 0 {
		return v[0], true, len(v) == 1 && v[0] != ""
	}
	if v := h.Values("Authorization"); len(v) > 0 {
		scheme, t, _ := strings.Cut(v[0], " ")
		if strings.EqualFold(scheme, "Bearer") {
			t = strings.TrimSpace(t)
			return t, true, len(v) == 1 && t != ""
		}
		// Another scheme (e.g. Basic for basic_auth) is not ours: no
		// credentials for this source.
	}
	if v := h.Values("Macaroon"); len(v) > 0 {
		return v[0], true, len(v) == 1 && v[0] != ""
	}
	return "", false, false
}
