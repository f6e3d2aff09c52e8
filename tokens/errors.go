package tokens

import "errors"

// Kind classifies why a token was refused. The Caddy handler maps each kind
// to a status code in one table; a backend can do the same.
type Kind uint8

// The kinds of refusal. Their order carries no meaning.
const (
	KindMalformed  Kind = iota + 1 // not exactly one well-formed macaroon, or a bad identifier
	KindTooLarge                   // serialized token over MaxTokenSize
	KindThirdParty                 // carries a third-party caveat
	KindNoKey                      // no root key for the token's persistence/generation
	KindRevoked                    // generation below the lowest configured one, or revoked by id
	KindSignature                  // signature does not verify
	KindWrongType                  // valid token, but not the kind the caller asked for
	KindExpired                    // a time caveat has passed
	KindCaveat                     // a caveat is not understood or not satisfied
	KindConsumer                   // an invite's consumer caveat excludes the caller
	KindUsedUp                     // a named invite's usage limit is reached (stores)
	KindUnknown                    // a named invite is not registered (stores)
	KindSelfJoin                   // the invite's target is the entity that would join it
)

var kindText = map[Kind]string{
	KindMalformed:  "token is malformed",
	KindTooLarge:   "token is too large",
	KindThirdParty: "token has a third-party caveat",
	KindNoKey:      "no key for this token",
	KindRevoked:    "token has been revoked",
	KindSignature:  "token signature is invalid",
	KindWrongType:  "token is of the wrong type",
	KindExpired:    "token has expired",
	KindCaveat:     "token caveat is not satisfied",
	KindConsumer:   "token is not meant for this user",
	KindUsedUp:     "token usage limit reached",
	KindUnknown:    "token is not registered",
	KindSelfJoin:   "an entity cannot join itself",
}

func (k Kind) String() string {
	if s, ok := kindText[k]; ok {
		return s
	}
	return "token is invalid"
}

// Error is the one error type this package returns for a refused token.
// Its text is meant for humans and logs: it names the reason and, for
// caveats, the caveat's kind (e.g. "ip"), never the token, a signature or a
// key.
type Error struct {
	Kind   Kind
	Caveat string // caveat kind that failed ("time", "ip", "geo.country", …), if any
	Detail string // safe human detail, e.g. "not a group invite"
	// Text is the failing caveat as written in the token, for an answer
	// that describes it to the token's holder (as Onezone's errors do). It
	// is not part of Error(), which goes to logs.
	Text string
}

func (e *Error) Error() string {
	msg := e.Kind.String()
	if e.Caveat != "" {
		msg += " (" + e.Caveat + ")"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is makes errors.Is(err, ErrExpired) and friends work on any *Error of the
// same kind, whatever its detail.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Caveat == "" && t.Detail == "" && t.Text == ""
}

// Sentinels for errors.Is.
var (
	ErrMalformed  = &Error{Kind: KindMalformed}
	ErrTooLarge   = &Error{Kind: KindTooLarge}
	ErrThirdParty = &Error{Kind: KindThirdParty}
	ErrNoKey      = &Error{Kind: KindNoKey}
	ErrRevoked    = &Error{Kind: KindRevoked}
	ErrSignature  = &Error{Kind: KindSignature}
	ErrWrongType  = &Error{Kind: KindWrongType}
	ErrExpired    = &Error{Kind: KindExpired}
	ErrCaveat     = &Error{Kind: KindCaveat}
	ErrConsumer   = &Error{Kind: KindConsumer}
	ErrUsedUp     = &Error{Kind: KindUsedUp}
	ErrUnknown    = &Error{Kind: KindUnknown}
	ErrSelfJoin   = &Error{Kind: KindSelfJoin}
)

// KindOf returns the Kind of err, or 0 when err is not (or does not wrap) an
// *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func malformed(detail string) *Error { return &Error{Kind: KindMalformed, Detail: detail} }
