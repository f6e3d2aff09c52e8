package groupjoin

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// answer is one documented edge-made error: its status, body and the
// outcome label it is counted and logged under.
type answer struct {
	status  int
	code    string
	desc    string
	outcome string
	oz      *ozError // the same answer in Onezone's model; nil: ozFallback's
}

// The generic invite description is fixed by the API page.
const genericInviteDesc = "Provided token could not be validated."

var (
	ansMethod       = answer{http.StatusMethodNotAllowed, "method_not_allowed", "Only POST is allowed.", "method_not_allowed", ozMethod}
	ansNoUser       = answer{http.StatusUnauthorized, "unauthorized", "Authentication required.", "unauthorized", ozUnauthorized}
	ansBadUser      = answer{http.StatusUnauthorized, "invalid_token", "Provided access token could not be validated.", "invalid_credentials", ozBadCredentials}
	ansUserExpired  = answer{http.StatusUnauthorized, "invalid_token", "Provided access token has expired.", "invalid_credentials", ozBadCredentials}
	ansInvalid      = answer{http.StatusBadRequest, "invalid_token", genericInviteDesc, "invalid_token", ozTokenInvalid}
	ansForbidden    = answer{http.StatusForbidden, "forbidden", "This invite is not meant for the current user.", "forbidden", ozForbidden}
	ansInternal     = answer{http.StatusInternalServerError, "internal_error", "Internal server error.", "internal_error", ozInternal}
	ansUnavailable  = answer{http.StatusServiceUnavailable, "service_unavailable", "Service temporarily unavailable.", "store_unavailable", ozServiceUnavailable}
	ansNoBackend    = answer{http.StatusInternalServerError, "internal_error", "Internal server error.", "no_backend_answer", ozInternal}
	ansBadGatewayNX = answer{http.StatusBadGateway, "bad_gateway", "Bad gateway.", "backend_error", ozServiceUnavailable}
)

// Request-shape errors: 400 invalid_request with a precise description.
func badRequest(desc string) answer {
	return answer{http.StatusBadRequest, "invalid_request", desc, "invalid_request", ozMalformedData}
}

// ansSelfJoin refuses a join whose invite targets the joining entity
// itself, as Onezone does (cannotAddRelationToSelf); it is a request the
// invite cannot serve rather than a bad invite.
var ansSelfJoin = answer{http.StatusBadRequest, "invalid_request", "An entity cannot join itself: the invite's target is the joining entity.", "self_join", ozSelfJoin}

// wrongTypeDesc describes an invite that is not of type t.
func wrongTypeDesc(t tokens.InviteType) string {
	if t.Code == tokens.InviteUserJoinGroup {
		return "Provided token is not a group invite."
	}
	return "Provided token is not a " + t.Name + " invite."
}

// inviteAnswer is inviteAnswerFor with this handler's description of an
// invite of another type, and in Onezone's model the ctool error for err;
// received is the invite when it authenticated.
func (h *Handler) inviteAnswer(err error, received *tokens.Token) answer {
	a := inviteAnswerFor(err, h.wrongType)
	if h.onezone {
		var expected tokens.InviteType
		if h.route != nil {
			expected = h.route.invite
		}
		a.oz = ozInviteError(err, expected, received)
	}
	return a
}

// inviteAnswerFor is the one table from token errors to answers for the
// invite; more specific descriptions help a human, the default one is the
// API page's. wrongType describes an invite of another type than the
// route's.
func inviteAnswerFor(err error, wrongType string) answer {
	a := ansInvalid
	switch tokens.KindOf(err) {
	case tokens.KindConsumer:
		return ansForbidden
	case tokens.KindSelfJoin:
		return ansSelfJoin
	case tokens.KindExpired:
		a.desc = "Invite token has expired."
	case tokens.KindRevoked:
		a.desc = "Invite token has been revoked."
	case tokens.KindWrongType:
		a.desc = wrongType
	case tokens.KindUsedUp:
		a.desc = "Invite token usage limit has been reached."
	case tokens.KindUnknown:
		a.desc = "Invite token is not registered."
	case tokens.KindTooLarge:
		a.desc = "Provided token is too large."
	}
	return a
}

// userAnswer maps an access-token error to the 401 answers; in Onezone's
// model, unauthorized with the token's error, or inviteTokenConsumerInvalid
// for a token that names no user.
func (h *Handler) userAnswer(err error) answer {
	a := ansBadUser
	if errors.Is(err, tokens.ErrExpired) {
		a = ansUserExpired
	}
	if h.onezone {
		var nu *notUserError
		if errors.As(err, &nu) {
			a.oz = ozConsumerInvalid(nu.subject)
		} else {
			tokenErr, _ := ozTokenError(err, tokens.InviteType{}, nil)
			a.oz = ozUnauthorizedBy(tokenErr)
		}
	}
	return a
}

// notUserError is an access token refused because its subject is not a
// user (a provider's, say): Onezone says that consumer cannot use the
// invite.
type notUserError struct {
	subject tokens.Subject
	err     error
}

func (e *notUserError) Error() string { return e.err.Error() }
func (e *notUserError) Unwrap() error { return e.err }

// backendAnswer is the documented body for a backend (or next handler)
// status that did not come with an error body of its own.
func backendAnswer(status int) answer {
	a := answer{status: status, outcome: "backend_error"}
	switch {
	case status == http.StatusBadRequest:
		a.code, a.desc = "invalid_request", "Invalid request."
	case status == http.StatusUnauthorized:
		a.code, a.desc = "unauthorized", "Authentication error."
	case status == http.StatusForbidden:
		a.code, a.desc = "forbidden", "Authorization error."
	case status == http.StatusNotFound:
		a.code, a.desc = "not_found", "Resource not found."
	case status == http.StatusConflict:
		a.code, a.desc = "already_member", "The user is already a member of this group."
	case status == http.StatusTooManyRequests:
		a.code, a.desc = "too_many_requests", "Too many requests."
	case status == http.StatusBadGateway:
		a.code, a.desc = "bad_gateway", "Bad gateway."
	case status == http.StatusServiceUnavailable:
		a.code, a.desc = "service_unavailable", "Service temporarily unavailable."
	case status == http.StatusGatewayTimeout:
		a.code, a.desc = "gateway_timeout", "Gateway timeout."
	case status >= 500 && status <= 599:
		a.code, a.desc = "internal_error", "Internal server error."
	case status >= 400 && status <= 499:
		a.code, a.desc = "invalid_request", "Invalid request."
	default: // 1xx and 3xx are no answer to a join
		return ansBadGatewayNX
	}
	return a
}

// write sends the answer as the documented JSON body.
func (a answer) write(w http.ResponseWriter) {
	body := make([]byte, 0, 64+len(a.code)+len(a.desc))
	body = append(body, `{"error":`...)
	body = appendQuoted(body, a.code)
	body = append(body, `,"error_description":`...)
	body = appendQuoted(body, a.desc)
	body = append(body, '}')
	writeAnswer(w, a.status, a.code == "invalid_token", body)
}

// writeAnswer sends an error body in either model with the headers every
// error answer has; a 401 for credentials that were there but are not
// valid says so in WWW-Authenticate.
func writeAnswer(w http.ResponseWriter, status int, invalidToken bool, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	switch status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", "POST")
	case http.StatusUnauthorized:
		if invalidToken {
			h.Set("Www-Authenticate", `Bearer error="invalid_token"`)
		} else {
			h.Set("Www-Authenticate", "Bearer")
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// appendQuoted appends s quoted as strconv.AppendQuote does. Answers are
// printable ASCII without quotes or backslashes, which need no escape:
// they are copied between quotes without strconv's rune-by-rune walk, a
// good part of the cost of refusing a request. Anything else goes through
// strconv.
func appendQuoted(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
