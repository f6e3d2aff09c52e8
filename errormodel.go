package groupjoin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// The two error models: how the edge writes an error answer. Outcomes,
// logs and metrics are the same in both.
const (
	// ModelDocumented is the API page's {"error": "<code>",
	// "error_description": "<text>"} (Onezone's until January 2017). The
	// default.
	ModelDocumented = "documented"
	// ModelOnezone is Onezone's since October 2019, ctool's errors:
	// {"error": {"id": …, "description": …, "details": {…}}}, with the
	// HTTP code of errors:to_http_code.
	ModelOnezone = "onezone"
)

// ozError is one error in Onezone's model (ctool src/errors.erl, to_json
// and to_http_code at 24bf9823). docs/contract.md has the table of which
// refusal answers which error.
type ozError struct {
	status  int
	id      string
	desc    string
	details map[string]any // nil: no details member
}

// ozJSON is an ozError as written, also when nested in another's details
// (tokenError, authError).
type ozJSON struct {
	ID          string         `json:"id"`
	Description string         `json:"description"`
	Details     map[string]any `json:"details,omitempty"`
}

func (e *ozError) json() ozJSON { return ozJSON{e.id, e.desc, e.details} }

// Errors without details, as ctool writes them.
var (
	ozBadToken           = &ozError{400, "badToken", "Provided token could not be understood by the server.", nil}
	ozTokenInvalid       = &ozError{400, "tokenInvalid", "Provided token is not valid.", nil}
	ozTokenRevoked       = &ozError{400, "tokenRevoked", "Provided token has been revoked.", nil}
	ozUsageLimit         = &ozError{400, "inviteTokenUsageLimitReached", "The usage limit of this invite token has been reached.", nil}
	ozMalformedData      = &ozError{400, "malformedData", "Provided data could not be understood by the server.", nil}
	ozSelfJoin           = &ozError{400, "cannotAddRelationToSelf", "Cannot add relation to self.", nil}
	ozUnauthorized       = &ozError{401, "unauthorized", "You must authenticate yourself to perform this operation.", nil}
	ozForbidden          = &ozError{403, "forbidden", "You are not authorized to perform this operation.", nil}
	ozNotFound           = &ozError{404, "notFound", "The resource could not be found.", nil}
	ozInternal           = &ozError{500, "internalServerError", "The server has encountered an error while processing this request.", nil}
	ozServiceUnavailable = &ozError{503, "serviceUnavailable", "Service required for this operation is offline.", nil}
	ozTimeout            = &ozError{503, "timeout", "Operation timed out.", nil}
	// Onezone has no error for these two HTTP answers; the closest ctool
	// error keeps the status that tells a client what to do (405 with
	// Allow, 425 to retry after the handshake).
	ozMethod   = &ozError{405, "notSupported", "This operation is not supported.", nil}
	ozTooEarly = &ozError{425, "temporaryFailure", "Temporary failure - please try again later.", nil}
	// Too many requests: Onezone has no such error either; 429 keeps the
	// backend's Retry-After meaningful.
	ozTooMany = &ozError{429, "temporaryFailure", "Temporary failure - please try again later.", nil}

	ozMissingToken = ozMissing("token")
	ozEmptyToken   = &ozError{400, "badValueEmpty", `Bad value: provided "token" must not be empty.`, map[string]any{"key": "token"}}
	ozTokenNotText = ozBadValueToken("token", ozBadToken)
	ozBadEntity    = &ozError{400, "badValueIdentifier", `Bad value: provided "id" is not a valid identifier.`, map[string]any{"key": "id"}}
	// Credentials that are there but unreadable (a header given twice, a
	// placeholder user id outside the id alphabet).
	ozBadCredentials = ozUnauthorizedBy(ozBadToken)
)

func ozMissing(key string) *ozError {
	return &ozError{400, "missingRequiredValue", "Missing required value: " + key + ".", map[string]any{"key": key}}
}

// ozBadValueToken wraps an error about the token in field key, as
// Onezone's request validation does for tokens it cannot deserialize or
// that are of the wrong type (oz-worker entity_logic_sanitizer.erl).
func ozBadValueToken(key string, tokenError *ozError) *ozError {
	return &ozError{400, "badValueToken", `Bad value: provided "` + key + `" is not a valid token (see details).`,
		map[string]any{"key": key, "tokenError": tokenError.json()}}
}

// ozUnauthorizedBy is unauthorized with the access token's error.
func ozUnauthorizedBy(authError *ozError) *ozError {
	return &ozError{401, "unauthorized", "Provided authentication is not valid (see details).",
		map[string]any{"authError": authError.json()}}
}

// ozBadData is badData with a hint, for a field the edge cannot honour.
func ozBadData(key, hint string) *ozError {
	return &ozError{400, "badData", `Bad value provided for "` + key + `": ` + strings.TrimSuffix(hint, ".") + ".",
		map[string]any{"key": key, "hint": hint}}
}

// ozNotAllowed is badValueNotAllowed: key must be one of allowed.
func ozNotAllowed(key string, allowed []string) *ozError {
	return &ozError{400, "badValueNotAllowed", `Bad value: provided "` + key + `" must be one of: ` + strings.Join(allowed, ", ") + ".",
		map[string]any{"key": key, "allowed": allowed}}
}

// ozTokenError is the error Onezone gives for a token refused for err:
// expected is the invite type asked for (zero: any), received the token
// when it authenticated. wrapped reports whether Onezone finds it while
// validating the request (and so wraps it in badValueToken) rather than
// while verifying the token.
func ozTokenError(err error, expected tokens.InviteType, received *tokens.Token) (e *ozError, wrapped bool) {
	var te *tokens.Error
	if !errors.As(err, &te) {
		return ozTokenInvalid, false
	}
	switch te.Kind {
	case tokens.KindMalformed, tokens.KindThirdParty:
		return ozBadToken, true
	case tokens.KindTooLarge:
		return &ozError{400, "tokenTooLarge", "Provided token exceeds the allowed size (" + strconv.Itoa(tokens.MaxTokenSize) + " characters).",
			map[string]any{"limit": tokens.MaxTokenSize}}, true
	case tokens.KindWrongType:
		if received == nil {
			return ozBadToken, true
		}
		return ozNotAnInvite(expected, received), true
	case tokens.KindRevoked:
		return ozTokenRevoked, false
	case tokens.KindUsedUp:
		return ozUsageLimit, false
	case tokens.KindSelfJoin:
		return ozSelfJoin, false
	case tokens.KindExpired, tokens.KindCaveat, tokens.KindConsumer:
		if te.Text == "" {
			return ozTokenInvalid, false
		}
		if te.Caveat == "unknown" || tokens.CaveatToJSON(te.Text).Type == "unknown" {
			return &ozError{400, "tokenCaveatUnknown", "Unknown caveat - '" + te.Text + "'.", map[string]any{"caveat": te.Text}}, false
		}
		return ozCaveatUnverified(te.Text), false
	}
	// KindNoKey, KindSignature, KindUnknown (a named token Onezone has no
	// record of): the token is not valid.
	return ozTokenInvalid, false
}

// ozInviteError is the answer for an invite refused for err.
func ozInviteError(err error, expected tokens.InviteType, received *tokens.Token) *ozError {
	e, wrapped := ozTokenError(err, expected, received)
	if wrapped {
		return ozBadValueToken("token", e)
	}
	return e
}

// ozNotAnInvite is notAnInviteToken: the description names the expected
// type as Erlang prints the atom (user_join_group), the details as JSON.
func ozNotAnInvite(expected tokens.InviteType, received *tokens.Token) *ozError {
	name, atom := "any", "any"
	if expected.Code != "" {
		name, atom = expected.Name, atomName(expected.Name)
	}
	var recv any
	if raw, err := tokens.TypeToJSON(received.ID.Type); err == nil {
		recv = json.RawMessage(raw)
	}
	return &ozError{400, "notAnInviteToken",
		"Expected an invitation token of type '" + atom + "', but received a(n) " + printableType(received.ID.Type) + ".",
		map[string]any{"expectedInviteType": name, "received": recv}}
}

// atomName is an invite type's Erlang atom: userJoinGroup → user_join_group.
func atomName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			b.WriteByte('_')
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String()
}

// printableType is ctool token_type:to_printable.
func printableType(t tokens.TokenType) string {
	switch t.Kind {
	case tokens.TypeAccess:
		if t.SessionID != "" {
			return `access token for session "` + t.SessionID + `"`
		}
		return "access token"
	case tokens.TypeIdentity:
		return "identity token"
	}
	it, ok := tokens.InviteTypeByCode(t.Code)
	switch {
	case !ok:
		return "invite token"
	case it.Code == "ssp":
		return `invite token to grant support for space "` + t.TargetID + `"`
	case it.Code == "hjs":
		return `invite token for a harvester to become a metadata sink for space "` + t.TargetID + `"`
	case it.Code == "rop":
		return `invite token to register a Oneprovider for admin user "` + t.TargetID + `"`
	}
	return "invite token for a " + it.Joiner.String() + " to join " + strings.ReplaceAll(it.Target.String(), "_", " ") + ` "` + t.TargetID + `"`
}

// ozCaveatUnverified is tokenCaveatUnverified for the caveat text: its
// JSON in the details, ctool's caveats:unverified_description in the
// description.
func ozCaveatUnverified(text string) *ozError {
	c := tokens.CaveatToJSON(text)
	return &ozError{400, "tokenCaveatUnverified", "Provided token is not valid - " + unverifiedDescription(c) + ".",
		map[string]any{"caveat": c}}
}

// unverifiedDescription is ctool caveats:unverified_description.
func unverifiedDescription(c tokens.CaveatJSON) string {
	list := func(v any) string {
		switch l := v.(type) {
		case []string:
			return strings.Join(l, " or ")
		case []uint32:
			s := make([]string, len(l))
			for i, n := range l {
				s[i] = strconv.FormatUint(uint64(n), 10)
			}
			return strings.Join(s, " or ")
		}
		return ""
	}
	comes := "comes"
	if c.Filter == "blacklist" {
		comes = "does NOT come"
	}
	switch c.Type {
	case "time":
		return "unverified time caveat: this token has expired at '" + time.Unix(*c.ValidUntil, 0).UTC().Format("2006-01-02T15:04:05Z") + "'"
	case "ip":
		return "unverified IP caveat: this token can only be used from an IP address that matches: '" + list(c.Whitelist) + "'"
	case "asn":
		return "unverified ASN caveat: this token can only be used from an IP address that maps to the following Autonomous System Number: '" + list(c.Whitelist) + "'"
	case "geo.country":
		return "unverified country caveat: this token can only be used from an IP address that " + comes + " from the following country: '" + list(c.List) + "'"
	case "geo.region":
		return "unverified region caveat: this token can only be used from an IP address that " + comes + " from the following region: '" + list(c.List) + "'"
	case "service":
		services, _ := c.Whitelist.([]string)
		printable := make([]string, len(services))
		for i, s := range services {
			printable[i] = printableService(s)
		}
		return "unverified service caveat: the service using this token must authenticate as '" + strings.Join(printable, " or ") +
			"' (use the x-onedata-service-token header), or the requested API operation is disallowed for the whitelisted services"
	case "consumer":
		consumers, _ := c.Whitelist.([]string)
		printable := make([]string, len(consumers))
		for i, s := range consumers {
			printable[i] = printableSubject(s)
		}
		return "unverified consumer caveat: the consumer of this token must authenticate as '" + strings.Join(printable, " or ") + "' - if that's you, you should:\n" +
			"   * send your access token in 'x-auth-token' header if consuming an invite token\n" +
			"   * send your identity token in 'x-onedata-consumer-token' header if performing an operation on behalf of somebody else with their access token\n" +
			"   * send your identity token in 'consumerToken' field if using token verification API"
	case "interface":
		return "unverified interface caveat: this token can only be used in the '" + c.Interface + "' interface"
	case "api":
		return "unverified API caveat: this token can only be used for API calls that match the following spec: '" + list(c.Whitelist) + "'"
	case "data.readonly":
		return "unverified data access caveat: this token allows for readonly data access"
	case "data.path":
		return "unverified data path caveat: this token can only be used to access data under the following paths (and nested directories): '" + list(c.Whitelist) + "'"
	case "data.objectid":
		return "unverified data path caveat: this token can only be used to access data with the following FILE_ID (and nested directories): '" + list(c.Whitelist) + "'"
	}
	if c.Scope == "identityToken" {
		return "this token carries no authorization (can be used only for identity verification)"
	}
	return "unverified caveat"
}

// printableSubject is aai:subject_to_printable of a serialized subject
// (usr-alice → user:alice).
func printableSubject(s string) string {
	kind, id, _ := strings.Cut(s, "-")
	switch kind {
	case "usr":
		return "user:" + id
	case "grp":
		return "group:" + id
	case "prv":
		return "oneprovider:" + id
	}
	return s
}

// printableService is aai:service_to_printable of a serialized service
// (ozw-onezone → oz_worker:onezone).
func printableService(s string) string {
	kind, id, _ := strings.Cut(s, "-")
	if long, ok := map[string]string{"ozw": "oz_worker", "ozp": "oz_panel", "opw": "op_worker", "opp": "op_panel"}[kind]; ok {
		return long + ":" + id
	}
	return s
}

// ozConsumerInvalid is inviteTokenConsumerInvalid: the caller is not a user.
func ozConsumerInvalid(s tokens.Subject) *ozError {
	return &ozError{400, "inviteTokenConsumerInvalid",
		"The consumer '" + printableSubject(s.String()) + "' is invalid for this type of invite token.",
		map[string]any{"consumer": tokens.SubjectToJSON(s)}}
}

// ozBackend is the error for a backend's non-2xx join answer that is not
// an error document of the model already: what Onezone answers for the
// same outcome of a join of joiner into target (an invite of type typ).
func ozBackend(status int, typ tokens.InviteType, joiner tokens.Entity, target string) *ozError {
	switch {
	case status == http.StatusBadRequest:
		return ozMalformedData
	case status == http.StatusUnauthorized:
		return ozUnauthorized
	case status == http.StatusForbidden:
		return ozForbidden
	case status == http.StatusNotFound && joiner.Type == tokens.EntityUser:
		// Where the caller joins, only the joined entity can be missing:
		// Onezone's answer for an invite whose target does not exist
		// (oz-worker invite_tokens.erl).
		return &ozError{400, "inviteTokenTargetIdInvalid", "The target id '" + target + "' is invalid for this type of invite token.",
			map[string]any{"id": target}}
	case status == http.StatusNotFound:
		// The joining group, space or harvester may be the missing one.
		return ozNotFound
	case status == http.StatusConflict:
		child, parent := joiner.Type.String(), typ.Target.String()
		return &ozError{409, "relationAlreadyExists",
			"Bad value: " + child + ":" + joiner.ID + " is already a member of " + parent + ":" + target + ".",
			map[string]any{"childType": child, "childId": joiner.ID, "parentType": parent, "parentId": target}}
	case status == http.StatusTooManyRequests:
		return ozTooMany
	case status == http.StatusGatewayTimeout:
		return ozTimeout
	case status == http.StatusBadGateway || status == http.StatusServiceUnavailable:
		return ozServiceUnavailable
	case status >= 500 && status <= 599:
		return ozInternal
	case status >= 400 && status <= 499:
		return ozMalformedData
	}
	// A 1xx or 3xx is no answer to a join.
	return ozServiceUnavailable
}

// ozFallback is the error for an answer that names none: by status.
func ozFallback(a answer) *ozError {
	switch a.status {
	case http.StatusUnauthorized:
		return ozUnauthorized
	case http.StatusForbidden:
		return ozForbidden
	case http.StatusServiceUnavailable:
		return ozServiceUnavailable
	}
	if a.status >= 500 {
		return ozInternal
	}
	return ozMalformedData
}

// writeOnezone sends a as Onezone's error, with the headers write sends,
// and returns the status sent.
func (a answer) writeOnezone(w http.ResponseWriter) int {
	e := a.oz
	if e == nil {
		e = ozFallback(a)
	}
	body, err := json.Marshal(struct {
		Error ozJSON `json:"error"`
	}{e.json()})
	if err != nil { // details are built here from strings and numbers
		body = []byte(fmt.Sprintf(`{"error":{"id":"internalServerError","description":%q}}`, ozInternal.desc))
		e = ozInternal
	}
	writeAnswer(w, e.status, a.code == "invalid_token", body)
	return e.status
}
