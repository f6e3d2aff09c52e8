package groupjoin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cache"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

var (
	errAmbiguousCredentials = errors.New("credentials header repeated or empty")
	errBadUserID            = errors.New("user id from placeholder has characters outside [A-Za-z0-9._~@-]")
	errNoAnswer             = errors.New("next handler wrote no answer (is reverse_proxy configured after group_join?)")
)

// drainLimit is how much of a refused body the edge still reads to keep
// the connection (as much as net/http's maxPostHandlerReadBytes).
const drainLimit = 256 << 10

// readRequestBody reads the body of a join or preview request (at most
// MaxBody), between the checks of the request's other parts
// (checkRequestHead, checkRequestTail). When it refuses the request, what is left of a large or unsized
// body may never come: it closes the connection rather than wait to drain
// it (Caddy wraps the body, which defeats net/http's own "too big,
// close"). A modest declared remainder is read first, so a client still
// sending it gets the answer rather than a connection reset.
func (h *Handler) readRequestBody(w http.ResponseWriter, r *http.Request) ([]byte, *answer) {
	a := checkRequestHead(r)
	var body []byte
	if a == nil {
		body, a = readBody(r, h.maxBody)
	}
	if a == nil {
		a = checkRequestTail(r)
	}
	if a != nil {
		if r.ContentLength < 0 || r.ContentLength > h.maxBody+drainLimit {
			// HTTP/2 and HTTP/3 end the stream instead, and forbid the
			// header (an HTTP/3 client refuses the answer).
			if r.ProtoMajor == 1 {
				w.Header().Set("Connection", "close")
			}
		} else {
			_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, drainLimit))
		}
	}
	return body, a
}

// decision is what gets logged and counted for one request.
type decision struct {
	clientIP string
	userID   string
	entityID string // the joining entity, when it is not the caller
	targetID string // the entity joined
	tokenID  string
	status   int
}

// ansEntity refuses a joining entity id (the path's {id}) outside the
// identifier alphabet: it would reach the backend's headers and the
// Location.
var ansEntity = answer{http.StatusBadRequest, "invalid_request",
	"The id of the joining entity (the path's {id}) must be 1 to 256 characters of A-Z a-z 0-9 . _ ~ @ -.", "invalid_request", ozBadEntity}

// ServeHTTP runs the pipeline: method → current user → request body and
// joining entity → invite → usage → forward → answer. The first failure
// answers; every answer is written here, and nil is returned. Where the
// steps live:
//
//   - a handler serving a preview endpoint (preview.go) answers there,
//     from the same keys, identity sources and store, and never forwards;
//   - the current user: identify, in identity.go, with the access-token
//     caches of internal/cache in front of the keyring;
//   - the request's parts and body: checkRequestHead and checkRequestTail
//     in upstream.go, readBody and tokenField in body.go; the joining
//     entity: joiner below;
//   - the invite: verifyInvite below (Token.CheckJoin), with the invite
//     caches and their doorkeeper (internal/cache) in front of the keyring;
//   - usage: reserve and settle in usage.go;
//   - forward: prepareUpstream in upstream.go decides every part of what
//     the backend gets; the backend's answer is held in a capture
//     (capture.go) until it is complete;
//   - answer: the edge's own answers in answers.go, the backend's turned
//     into the client's by answer below.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	switch h.Serve {
	case ServeExamine:
		return h.serveExamine(w, r)
	case ServeVerify:
		return h.serveVerify(w, r)
	}
	start := h.now()
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	d := decision{clientIP: ip}
	st := h.newRequest(start, ip)
	env := &st.Env // what caveats are checked against
	env.JoinTarget = h.route.invite.Target

	// 1. Method.
	if r.Method != http.MethodPost {
		return h.reject(w, &d, ansMethod, nil)
	}

	// 2. Current user.
	who, a, err := h.identify(r, repl, env)
	if a != nil {
		return h.reject(w, &d, *a, err)
	}
	d.userID = who.userID

	// 3. Request shape, and who joins.
	body, a := h.readRequestBody(w, r)
	if a != nil {
		return h.reject(w, &d, *a, nil)
	}
	raw, a := tokenField(body)
	if a != nil {
		return h.reject(w, &d, *a, nil)
	}
	joiner, a := h.joiner(r, repl, who)
	if a != nil {
		return h.reject(w, &d, *a, nil)
	}
	if !h.route.byUser() {
		d.entityID = joiner.ID
	}

	// 4. Invite: type, caveats, consumer binding, not a self-join
	// (Token.CheckJoin, in that order).
	env.UserID = who.userID
	var slot cache.Slot // invite's Token, when not cached; valid until return
	defer slot.Release()
	typ := h.route.invite
	invite, err := h.verifyInvite(raw, env, &slot, &d, func(t *tokens.Token, env *tokens.Env) error {
		return t.CheckJoin(typ, joiner, env)
	})
	h.metrics.verify.Observe(h.now().Sub(start).Seconds())
	if err != nil {
		return h.reject(w, &d, h.inviteAnswer(err, invite), err)
	}

	// 5. Usage: reserve one use of a registered named invite.
	res, a, err := h.reserve(r.Context(), invite)
	if a != nil {
		return h.reject(w, &d, *a, err)
	}

	// 6. Forward.
	h.prepareUpstream(r, repl, st, who, joiner, invite, body)
	rec := newCapture()
	defer rec.release()
	nextErr := next.ServeHTTP(rec, r)

	// 7. Answer; the reserved use is kept only when the backend admitted.
	h.settle(res, nextErr == nil && rec.status >= 200 && rec.status <= 299, &d)
	return h.answer(w, &d, st, repl, joiner, invite, rec, nextErr)
}

// joiner returns who joins: the caller, or on a route where a group,
// space or harvester joins, the entity the path names (its second
// segment, /groups/{id}/…) or the entity placeholder does.
func (h *Handler) joiner(r *http.Request, repl *caddy.Replacer, who caller) (tokens.Entity, *answer) {
	e := tokens.Entity{Type: h.route.invite.Joiner}
	switch {
	case h.route.byUser():
		e.ID = who.userID
		return e, nil
	case h.Entity == "":
		e.ID = pathSegment(r.URL.Path, 1)
	default:
		e.ID = repl.ReplaceAll(h.Entity, "")
	}
	if !tokens.ValidID(e.ID) {
		return e, &ansEntity
	}
	return e, nil
}

// verifyInvite is Verifier.Keys.Authenticate then check (Token.CheckJoin
// for a route), with the caches in front of Authenticate; an invite that
// is not cached is written into slot. The decision names the invite as
// soon as it authenticated, refused or not.
func (h *Handler) verifyInvite(raw string, env *tokens.Env, slot *cache.Slot, d *decision, check func(*tokens.Token, *tokens.Env) error) (*tokens.Token, error) {
	invite, err := h.invites.Verify(raw, env, slot, h.verifier.Keys.AuthenticateTo, check)
	if invite != nil {
		d.tokenID, d.targetID = invite.ID.TokenID, invite.ID.Type.TargetID
	}
	return invite, err
}

// location is the Location of the joined entity.
func (h *Handler) location(repl *caddy.Replacer, joiner tokens.Entity, target string) string {
	switch {
	case h.locTemplated:
		return repl.ReplaceKnown(h.locBefore, "") + target
	case h.route.byUser():
		return h.locBefore + target
	}
	return h.locBefore + joiner.ID + h.locAfter + target
}

// answer turns what the next handler did into the documented answer.
func (h *Handler) answer(w http.ResponseWriter, d *decision, st *requestState, repl *caddy.Replacer, joiner tokens.Entity, invite *tokens.Token, rec *capture, nextErr error) error {
	switch {
	case nextErr != nil:
		status := http.StatusInternalServerError
		var he caddyhttp.HandlerError
		if errors.As(nextErr, &he) && he.StatusCode != 0 {
			status = he.StatusCode
		}
		a := h.backendAnswer(status, joiner, invite)
		a.outcome = "upstream_error"
		return h.reject(w, d, a, nextErr)
	case rec.status == 0:
		return h.reject(w, d, ansNoBackend, errNoAnswer)
	case rec.status >= 200 && rec.status <= 299:
		copyBackendHeaders(w.Header(), rec.header)
		// As Header.Set stores them, the values in the request's state (see
		// prepareUpstream).
		v := st.created[:]
		v[0], v[1] = h.location(repl, joiner, invite.ID.Type.TargetID), "0"
		w.Header()["Location"], w.Header()["Content-Length"] = v[0:1:1], v[1:2:2]
		w.WriteHeader(http.StatusCreated)
		d.status = http.StatusCreated
		h.log(zapcore.InfoLevel, "joined", d, nil)
		return nil
	}
	if h.errorDocument(rec) {
		copyBackendHeaders(w.Header(), rec.header)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(rec.body.Len()))
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
		d.status = rec.status
		h.log(zapcore.InfoLevel, "backend_refused", d, nil)
		return nil
	}
	a := h.backendAnswer(rec.status, joiner, invite)
	if ra := rec.header.Get("Retry-After"); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	return h.reject(w, d, a, nil)
}

// errorDocument reports whether a backend's non-2xx answer already is an
// error of the configured model: a JSON object whose "error" member (once)
// is a string, or in Onezone's model an object with a string "id" and a
// string "description".
func (h *Handler) errorDocument(rec *capture) bool {
	if rec.overflow || rec.status < 400 || rec.status > 599 {
		return false
	}
	f, ok := topField(rec.body.Bytes(), "error")
	if !ok || !f.object || f.count != 1 {
		return false
	}
	if !h.onezone {
		_, isString := f.str()
		return isString
	}
	var e struct {
		ID          *string `json:"id"`
		Description *string `json:"description"`
	}
	return len(f.raw) > 0 && f.raw[0] == '{' && json.Unmarshal(f.raw, &e) == nil && e.ID != nil && e.Description != nil
}

// backendAnswer is backendAnswer for this handler's model: in Onezone's,
// the error Onezone gives for the same outcome of this join.
func (h *Handler) backendAnswer(status int, joiner tokens.Entity, invite *tokens.Token) answer {
	a := backendAnswer(status)
	if h.onezone {
		a.oz = ozBackend(status, h.route.invite, joiner, invite.ID.Type.TargetID)
	}
	return a
}

// copyBackendHeaders passes the backend's headers on, less those that
// describe a body or resource the client does not get.
func copyBackendHeaders(dst, src http.Header) {
	for k, v := range src {
		switch k {
		case "Content-Type", "Content-Length", "Content-Encoding", "Content-Language", "Content-Range",
			"Content-Disposition", "Content-Location", "Content-Md5", "Content-Security-Policy",
			"Transfer-Encoding", "Location", "Etag", "Last-Modified":
			continue
		}
		dst[k] = v
	}
}

// reject writes an edge-made answer, logs and counts it. It returns nil:
// the answer is final, handle_errors does not run.
func (h *Handler) reject(w http.ResponseWriter, d *decision, a answer, err error) error {
	d.status = a.status
	if h.onezone {
		d.status = a.writeOnezone(w)
	} else {
		a.write(w)
	}
	level := zapcore.InfoLevel
	if d.status >= 500 {
		level = zapcore.ErrorLevel
	}
	h.log(level, a.outcome, d, err)
	return nil
}

func (h *Handler) log(level zapcore.Level, outcome string, d *decision, err error) {
	h.counts.count(outcome)
	ce := h.logger.Check(level, "group join")
	if ce == nil {
		return
	}
	fields := make([]zap.Field, 0, 10)
	fields = append(fields,
		zap.String("outcome", outcome),
		zap.Int("status", d.status),
		zap.String("client_ip", d.clientIP),
		zap.String("user_id", d.userID))
	if h.route != nil {
		fields = append(fields, zap.String("route", h.route.invite.Name))
		if h.entityField != "" {
			fields = append(fields, zap.String(h.entityField, d.entityID))
		}
		fields = append(fields, zap.String(h.targetField, d.targetID))
	} else {
		// A preview serves no route: the invite's target, of any type.
		fields = append(fields, zap.String("target_id", d.targetID))
	}
	fields = append(fields, zap.String("token_id", d.tokenID))
	if err != nil {
		fields = append(fields, zap.String("reason", err.Error()))
	}
	ce.Write(fields...)
}

// now is the handler's clock: time.Now, or the clock a test set.
func (h *Handler) now() time.Time {
	if h.clock != nil {
		return h.clock()
	}
	return time.Now()
}
