package groupjoin

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"path"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// What the backend receives is decided here, part by part: the edge
// forwards a request it verified, so every part of it is either checked,
// rewritten, stripped or refused. docs/security.md has the inventory as a
// table; TestUpstreamRequestParts sends each row through a real Caddy.

// Headers the edge owns towards the backend: client-sent copies are always
// removed (in any case, and with '_' or '.' for '-'), so the backend can
// trust them. In the order of requestState.upstream; X-Group-Id is set
// when the joined entity is a group.
var upstreamHeaders = [...]string{
	"X-User-Id", "X-Group-Id", "X-Invite-Token-Id", "X-Invite-Issuer",
	"X-Invite-Type", "X-Join-Entity-Type", "X-Join-Entity-Id", "X-Join-Target-Type", "X-Join-Target-Id",
}

// Refusals of request parts the edge cannot vouch for.
var (
	ansTooEarly = answer{http.StatusTooEarly, "too_early", "Request was sent in TLS early data; retry it after the handshake.", "too_early", ozTooEarly}
	ansQuery    = badRequest("Request must have no query string.")
	ansTarget   = badRequest("Request path must be plain: no percent-escapes, no ';', no empty, '.' or '..' segments, no trailing '/'.")
	ansEncoded  = badRequest("Request body must not be encoded (Content-Encoding).")
	ansTrailers = badRequest("Request trailers are not accepted.")
)

// checkRequestHead refuses, before the body is read, what the edge would
// otherwise forward without having verified it: early data (replayable),
// a query or a path in a form the backend may read differently from
// Caddy's path matcher, an encoded body, declared trailers.
func checkRequestHead(r *http.Request) *answer {
	switch {
	case r.TLS != nil && !r.TLS.HandshakeComplete:
		return &ansTooEarly
	case r.URL.RawQuery != "" || r.URL.ForceQuery:
		return &ansQuery
	case !plainPath(r.URL.EscapedPath()):
		return &ansTarget
	case !identityEncoding(r.Header["Content-Encoding"]):
		return &ansEncoded
	case r.Trailer != nil:
		// Declared (Trailer: …); net/http drops the Trailer header itself.
		return &ansTrailers
	}
	return nil
}

// checkRequestTail refuses trailers found in r.Trailer once the body is
// read. Undeclared HTTP/1.1 trailers do not show there under Caddy: net/http
// stores them on its own request, of which Caddy hands handlers a copy, so
// they go nowhere (prepareUpstream sends no trailer map either way).
func checkRequestTail(r *http.Request) *answer {
	if r.Trailer != nil {
		return &ansTrailers
	}
	return nil
}

// plainPath reports whether p (as sent, escaped) is an absolute path that
// every router reads the same way: no percent-escapes (%2F, %2E and the
// like decode differently from server to server), no ';' (path parameters
// to some), and already clean. Caddy's path matcher cleans and unescapes
// before matching, so without this "/x/../user/groups/join" would pass the
// matcher and reach the backend as it was sent.
func plainPath(p string) bool {
	return p != "" && p[0] == '/' && !strings.ContainsAny(p, "%;") && path.Clean(p) == p
}

// identityEncoding reports whether Content-Encoding values say the body is
// not encoded.
func identityEncoding(values []string) bool {
	for _, v := range values {
		for c := range strings.SplitSeq(v, ",") {
			if c = textproto.TrimString(c); c != "" && !strings.EqualFold(c, "identity") {
				return false
			}
		}
	}
	return true
}

// prepareUpstream makes r the request the backend receives: the headers
// filtered by upstreamRule, the edge's own set, placeholders, and the body
// exactly as verified, with its length. Every field of r that
// reverse_proxy reads is set here or checked before.
func (h *Handler) prepareUpstream(r *http.Request, repl *caddy.Replacer, st *requestState, who caller, joiner tokens.Entity, invite *tokens.Token, body []byte) {
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	filterHeaders(r.Header, trusted)
	t := h.route.invite
	vars := joinVars{
		userID: who.userID, tokenID: invite.ID.TokenID, issuer: invite.ID.Subject.String(),
		inviteType: t.Name, entityType: t.Joiner.String(), entityID: joiner.ID,
		targetType: t.Target.String(), targetID: invite.ID.Type.TargetID,
	}
	// As Header.Set stores them (canonical names), with the values in the
	// request's state; capped slices, so an append copies. Header.Set here
	// and for the 201 would cost an allocation per header and about 12% of
	// a forwarded join (BenchmarkServeHTTP/valid, BENCHMARKS.md).
	v := st.upstream[:]
	v[0] = "application/json" // the only type the edge reads
	r.Header["Content-Type"] = v[0:1:1]
	if h.setHeaders {
		v[1], v[2], v[3], v[4] = vars.userID, vars.tokenID, vars.issuer, vars.inviteType
		v[5], v[6], v[7], v[8] = vars.entityType, vars.entityID, vars.targetType, vars.targetID
		r.Header["X-User-Id"] = v[1:2:2]
		r.Header["X-Invite-Token-Id"] = v[2:3:3]
		r.Header["X-Invite-Issuer"] = v[3:4:4]
		r.Header["X-Invite-Type"] = v[4:5:5]
		r.Header["X-Join-Entity-Type"] = v[5:6:6]
		r.Header["X-Join-Entity-Id"] = v[6:7:7]
		r.Header["X-Join-Target-Type"] = v[7:8:8]
		r.Header["X-Join-Target-Id"] = v[8:9:9]
		if t.Target == tokens.EntityGroup {
			r.Header["X-Group-Id"] = v[8:9:9]
		}
	}
	// One provider answers the placeholders: cheaper than a Replacer.Set
	// call for each (a lock, a map insert and an allocation each). The
	// method value holds its own copy of vars: one allocation in all.
	repl.Map(vars.get)
	if who.fromToken {
		// Set, not the provider: it must override what an earlier auth
		// handler may have set, as basic_auth does.
		repl.Set("http.auth.user.id", who.userID)
	}
	st.body.Reset(body)
	r.Body = &st.body
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	// No trailers go on (checkRequestTail refused any that came): with a
	// trailer map reverse_proxy would send the body chunked and copy the
	// client's trailers after it.
	r.Trailer = nil
	r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
}

// joinVars are the values of the {http.group_join.*} placeholders of one
// join.
type joinVars struct {
	userID, tokenID, issuer, inviteType        string
	entityType, entityID, targetType, targetID string
}

func (v joinVars) get(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, "http.group_join.")
	if !ok {
		return nil, false
	}
	switch name {
	case "user_id":
		return v.userID, true
	case "group_id":
		if v.targetType != "group" {
			return nil, false
		}
		return v.targetID, true
	case "token_id":
		return v.tokenID, true
	case "issuer":
		return v.issuer, true
	case "invite_type":
		return v.inviteType, true
	case "entity_type":
		return v.entityType, true
	case "entity_id":
		return v.entityID, true
	case "target_type":
		return v.targetType, true
	case "target_id":
		return v.targetID, true
	}
	return nil, false
}

// filterHeaders deletes from hdr every header that must not reach the
// backend: those the client's Connection header names (hop-by-hop for
// this connection), then each whose upstreamRule says so.
func filterHeaders(hdr http.Header, trusted bool) {
	for _, v := range hdr["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				delete(hdr, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	for k := range hdr {
		if upstreamRule(k, trusted) == strip {
			delete(hdr, k)
		}
	}
}

// rule is what happens to one request header on its way upstream.
type rule int

const (
	forward rule = iota // as the client sent it
	strip               // not forwarded
)

// upstreamRule is the one table of request headers (name canonical, as
// net/http stores it). Headers that describe this hop or the body's
// framing and encoding are stripped (the edge sends the body it verified,
// with its length); so are the edge's own names in any spelling, method
// overrides (a POST the edge verified must not turn into another method),
// and, from a client that is not a trusted proxy, claims about where the
// request came from (reverse_proxy then sets X-Forwarded-For, -Proto and
// -Host from the connection). Everything else is end-to-end and goes on
// as sent: credentials, cookies, Content-Type (rewritten after), tracing.
func upstreamRule(k string, trusted bool) rule {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Http2-Settings", "Proxy-Authorization", "Proxy-Authenticate", "Alt-Svc",
		"Expect", "Content-Length", "Content-Encoding", "Accept-Encoding", "Incremental", "Early-Data",
		"X-Http-Method-Override", "X-Http-Method", "X-Method-Override":
		return strip
	case "Forwarded", "X-Real-Ip", "True-Client-Ip", "X-Client-Ip":
		if !trusted {
			return strip
		}
		return forward
	}
	if edgeOwned(k) {
		return strip
	}
	if !trusted && len(k) > len("X-Forwarded-") && sameHeaderName(k[:len("X-Forwarded-")], "X-Forwarded-") {
		return strip
	}
	return forward
}

// edgeOwned reports whether k names one of the edge's headers, compared
// as CGI-style backends do: without regard to case, '_' and '.' read as
// '-'.
func edgeOwned(k string) bool {
	// Every edge header is "X-" and at least as long as X-User-Id: most
	// names are told apart by their first two bytes.
	if len(k) < len("X-User-Id") || headerByte(k[0]) != 'x' || headerByte(k[1]) != '-' {
		return false
	}
	for _, o := range upstreamHeaders {
		if sameHeaderName(k, o) {
			return true
		}
	}
	return false
}

// sameHeaderName compares header names without regard to case, with '_'
// and '.' in a equal to '-' in b.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if headerByte(a[i]) != headerByte(b[i]) {
			return false
		}
	}
	return true
}

// headerByte is c lower-cased, with '_' and '.' read as '-'.
func headerByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_' || c == '.':
		return '-'
	}
	return c
}
