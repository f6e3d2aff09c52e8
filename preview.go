package groupjoin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cache"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Onezone's paths of the preview endpoints, which a Caddyfile's route for
// an examine or verify handler normally matches.
const (
	DefaultExaminePath = "/tokens/examine"
	DefaultVerifyPath  = "/tokens/verify_invite_token"
)

// Outcomes of the preview endpoints; refusals are counted as the prefix
// and the join's outcome, e.g. "verify_invalid_token", so join
// dashboards do not count previews.
const (
	outcomeExamined = "examined"
	outcomeVerified = "verified"
	prefixExamine   = "examine_"
	prefixVerify    = "verify_"
)

var (
	ansUndecodable = answer{http.StatusBadRequest, "invalid_token", "Provided token could not be decoded.", "invalid_token", ozBadValueToken("token", ozBadToken)}
	// Verify with no identified caller, for an invite bound to consumers.
	// Onezone answers tokenCaveatUnverified for the consumer caveat
	// (verifyAnswer sets it).
	ansSignInToCheck = answer{http.StatusUnauthorized, "unauthorized", "This invite is meant for specific users: sign in to check it.", "unauthorized", nil}
)

// examineAnswer maps an Examine error to its answer.
func examineAnswer(err error) answer {
	a := ansUndecodable
	if tokens.KindOf(err) == tokens.KindTooLarge {
		a.desc = "Provided token is too large."
		a.oz = ozInviteError(err, tokens.InviteType{}, nil)
	}
	return a
}

// serveExamine answers POST <examine path> {"token": …}: what the token
// says, not verified. Nothing in it is trusted, and anyone holding a
// token can decode it; the token itself is neither logged nor echoed
// beyond its decoded fields.
func (h *Handler) serveExamine(w http.ResponseWriter, r *http.Request) error {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	d := decision{clientIP: ip}
	refuse := func(a answer, err error) error {
		a.outcome = prefixExamine + a.outcome
		return h.reject(w, &d, a, err)
	}
	_, raw, a := h.previewToken(w, r)
	if a != nil {
		return refuse(*a, nil)
	}
	e, err := tokens.Examine(raw)
	if err != nil {
		return refuse(examineAnswer(err), err)
	}
	d.tokenID = e.ID
	return h.previewOK(w, &d, outcomeExamined, e)
}

// verifyAnswer is what verify_invite_token answers: Onezone's shape.
type verifyAnswer struct {
	Subject tokens.SubjectJSON `json:"subject"`
	TTL     *int64             `json:"ttl"`
}

// serveVerify answers POST <verify path> {"token": …}: the join's
// verification without consuming anything. Order: method → request shape
// → caller (consumerToken, else the identity sources, none needed) →
// invite, consumer last → the invite's state in the store (read only).
func (h *Handler) serveVerify(w http.ResponseWriter, r *http.Request) error {
	start := h.now()
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	d := decision{clientIP: ip}
	refuse := func(a answer, err error) error {
		a.outcome = prefixVerify + a.outcome
		return h.reject(w, &d, a, err)
	}
	st := h.newRequest(start, ip)
	env := &st.Env

	body, raw, a := h.previewToken(w, r)
	if a != nil {
		return refuse(*a, nil)
	}
	served := h.servedTypes()
	req, a := verifyFields(body, served)
	if a != nil {
		return refuse(*a, nil)
	}
	// The caller's api caveats are checked against the join verified for:
	// the expected type's, the one type served, else a group's.
	switch {
	case req.expected.Code != "":
		env.JoinTarget = req.expected.Target
	case len(served) == 1:
		env.JoinTarget = served[0].Target
	}

	// The caller: consumerToken names them explicitly (null: nobody);
	// otherwise the identity sources, where finding nobody is fine.
	var who caller
	switch {
	case req.consumerNull:
	case req.consumerToken != "":
		c, err := h.verifyAccess(req.consumerToken, env)
		if err != nil {
			a := h.userAnswer(err)
			if h.onezone { // Onezone validates the field first
				tokenErr, _ := ozTokenError(err, tokens.InviteType{}, nil)
				a.oz = ozBadValueToken("consumerToken", tokenErr)
			}
			return refuse(a, err)
		}
		who = c
	default:
		c, a, err := h.identify(r, repl, env)
		if a != nil && !(a.status == http.StatusUnauthorized && a.code == "unauthorized") {
			return refuse(*a, err)
		}
		who = c
	}
	d.userID = who.userID

	env.UserID = who.userID
	var slot cache.Slot // invite's Token, when not cached; valid until return
	defer slot.Release()
	// Against expectedInviteType, or else the invite's own type when it is
	// served here; no joiner is named, so a self-join is not looked for.
	wrongType := "Provided token is not an invite of a type served here."
	switch {
	case req.expected.Code != "":
		wrongType = wrongTypeDesc(req.expected)
	case len(served) == 1:
		wrongType = wrongTypeDesc(served[0])
	}
	invite, err := h.verifyInvite(raw, env, &slot, &d, func(t *tokens.Token, env *tokens.Env) error {
		typ := req.expected
		if typ.Code == "" {
			for _, s := range served {
				if s.Code == t.ID.Type.Code {
					typ = s
				}
			}
		}
		return t.CheckJoin(typ, tokens.Entity{}, env)
	})
	if err != nil {
		if tokens.KindOf(err) == tokens.KindConsumer && who.userID == "" {
			a := ansSignInToCheck
			if h.onezone {
				a.oz = ozInviteError(err, req.expected, invite)
			}
			return refuse(a, err)
		}
		a := inviteAnswerFor(err, wrongType)
		if h.onezone {
			a.oz = ozInviteError(err, req.expected, invite)
		}
		return refuse(a, err)
	}
	if a, err := h.peekUsage(r.Context(), invite); a != nil {
		return refuse(*a, err)
	}

	out := verifyAnswer{Subject: tokens.SubjectToJSON(invite.ID.Subject)}
	if !invite.Expires.IsZero() {
		ttl := invite.Expires.Unix() - start.Unix()
		out.TTL = &ttl
	}
	return h.previewOK(w, &d, outcomeVerified, out)
}

// peekUsage is reserve without the reservation: what the store would
// answer for a named invite right now. A use in flight counts as taken,
// as it does for Reserve.
func (h *Handler) peekUsage(rctx context.Context, invite *tokens.Token) (*answer, error) {
	if h.store == nil || !invite.ID.Persistence.Named {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(rctx, settleTimeout)
	defer cancel()
	inv, err := h.store.Get(ctx, invite.ID.TokenID)
	var kind error
	switch {
	case errors.Is(err, store.ErrUnknown):
		kind = tokens.ErrUnknown
	case err != nil:
		return &ansUnavailable, err
	case inv.Revoked:
		kind = tokens.ErrRevoked
	case inv.Limit != store.Unlimited && inv.Used+inv.Reserved >= inv.Limit:
		kind = tokens.ErrUsedUp
	default:
		return nil, nil
	}
	a := h.inviteAnswer(kind, invite)
	return &a, kind
}

// verifyRequest is what verify_invite_token reads besides the token.
type verifyRequest struct {
	expected      tokens.InviteType // zero: any type served here
	consumerToken string
	consumerNull  bool
}

// verifyFields checks Onezone's optional request fields of
// verify_invite_token. expectedInviteType may name any of the invite types
// served (by the join handlers that share this configuration);
// consumerToken names the caller by an access token (null: nobody).
// Fields whose meaning the edge cannot honour are refused rather than
// ignored: peerIp (caveats are checked against the address the request
// comes from), interface and serviceToken (never valid on an invite), and
// allowDataAccessCaveats true (data caveats always fail on an invite).
// Every field may appear once, like "token".
func verifyFields(body []byte, served []tokens.InviteType) (verifyRequest, *answer) {
	var req verifyRequest
	fail := func(desc string) (verifyRequest, *answer) { a := badRequest(desc); return req, &a }
	failOz := func(desc string, oz *ozError) (verifyRequest, *answer) {
		a := badRequest(desc)
		a.oz = oz
		return req, &a
	}
	// The types served, for the refusals of expectedInviteType only.
	servedNames := func() []string {
		names := make([]string, len(served))
		for i, t := range served {
			names[i] = t.Name
		}
		return names
	}
	get := func(name string) (json.RawMessage, *answer) {
		f, _ := topField(body, name) // the body is known to be a JSON object
		switch {
		case f.count > 1 || f.folded > 0:
			_, a := fail(`Field "` + name + `" is given more than once.`)
			return nil, a
		case f.count == 0 || string(f.raw) == "null":
			return nil, nil
		}
		return f.raw, nil
	}
	raw, a := get("expectedInviteType")
	if a != nil {
		return req, a
	}
	if raw != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return failOz(`Field "expectedInviteType" must be a string.`, ozNotAllowed("expectedInviteType", servedNames()))
		}
		for _, t := range served {
			if t.Name == s {
				req.expected = t
			}
		}
		if req.expected.Code == "" {
			names := servedNames()
			quoted := make([]string, len(names))
			for i, n := range names {
				quoted[i] = strconv.Quote(n)
			}
			return failOz(`Field "expectedInviteType": the invites verified here are of type `+strings.Join(quoted, ", ")+".",
				ozNotAllowed("expectedInviteType", names))
		}
	}
	f, _ := topField(body, "consumerToken")
	if f.count > 1 || f.folded > 0 {
		return fail(`Field "consumerToken" is given more than once.`)
	}
	if f.count == 1 {
		if string(f.raw) == "null" {
			req.consumerNull = true
		} else if s, ok := f.str(); !ok || s == "" {
			return failOz(`Field "consumerToken" must be a non-empty string or null.`, ozBadValueToken("consumerToken", ozBadToken))
		} else {
			req.consumerToken = s
		}
	}
	for _, name := range []string{"peerIp", "interface", "serviceToken"} {
		raw, a := get(name)
		if a != nil {
			return req, a
		}
		if raw != nil {
			return failOz(`Field "`+name+`" is not supported here: `+refusedWhy[name], ozBadData(name, refusedWhy[name]))
		}
	}
	raw, a = get("allowDataAccessCaveats")
	if a != nil {
		return req, a
	}
	if raw != nil && string(raw) != "false" {
		return failOz(`Field "allowDataAccessCaveats" may only be false: data access caveats never hold on an invite.`,
			ozBadData("allowDataAccessCaveats", "data access caveats never hold on an invite"))
	}
	return req, nil
}

var refusedWhy = map[string]string{
	"peerIp":       "caveats are checked against the address the request comes from.",
	"interface":    "an invite with an interface caveat is never valid.",
	"serviceToken": "an invite with a service caveat is never valid.",
}

// previewToken checks what both preview requests start with, in order:
// the method is POST, the body is readable (readRequestBody), and it
// holds a "token" field. It returns the body and that field's value.
func (h *Handler) previewToken(w http.ResponseWriter, r *http.Request) ([]byte, string, *answer) {
	if r.Method != http.MethodPost {
		a := ansMethod // a copy: the caller may change its outcome
		return nil, "", &a
	}
	body, a := h.readRequestBody(w, r)
	if a != nil {
		return nil, "", a
	}
	raw, a := tokenField(body)
	if a != nil {
		return nil, "", a
	}
	return body, raw, nil
}

// previewOK writes a 200 JSON answer, logs and counts it.
func (h *Handler) previewOK(w http.ResponseWriter, d *decision, outcome string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		a := ansInternal
		a.outcome = outcome + "_internal_error"
		return h.reject(w, d, a, err)
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	d.status = http.StatusOK
	h.log(zapcore.InfoLevel, outcome, d, nil)
	return nil
}
