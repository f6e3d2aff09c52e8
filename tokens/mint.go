package tokens

import (
	"crypto/rand"
	"errors"

	"gopkg.in/macaroon.v2"
)

// DefaultLocation is the macaroon location of minted tokens.
const DefaultLocation = "onezone"

// Mint builds a token with the given identifier and first-party caveats,
// signed with secret, and serializes it in Onedata's form. Each caveat is
// checked with ParseCaveat first, so a minted token never carries text the
// verifier would refuse as malformed.
func Mint(secret []byte, location string, id Identifier, caveats ...string) (string, error) {
	m, err := MintMacaroon(secret, location, id, caveats...)
	if err != nil {
		return "", err
	}
	return Encode(m, FormatOnedata)
}

// MintMacaroon is Mint without the serialization.
func MintMacaroon(secret []byte, location string, id Identifier, caveats ...string) (*macaroon.Macaroon, error) {
	if len(secret) == 0 {
		return nil, errors.New("empty secret")
	}
	raw := id.String()
	if _, err := ParseIdentifier(raw); err != nil {
		return nil, err
	}
	if location == "" {
		location = DefaultLocation
	}
	m, err := macaroon.New(secret, []byte(raw), location, macaroon.V1)
	if err != nil {
		return nil, err
	}
	for _, c := range caveats {
		if _, err := ParseCaveat(c); err != nil {
			return nil, err
		}
		if err := m.AddFirstPartyCaveat([]byte(c)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// NewTokenID returns a random token id: 32 characters of a 32-letter
// lower-case alphabet, 160 bits.
func NewTokenID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b[:])
}

// InviteID returns the identifier of a user-join-group invite into group
// issued by inviter (a bare user id).
func InviteID(p Persistence, inviter, group, tokenID string) Identifier {
	return InviteIDOf(p, UserJoinGroup, inviter, group, tokenID)
}

// InviteIDOf returns the identifier of an invite of type typ to target
// issued by inviter (a bare user id).
func InviteIDOf(p Persistence, typ InviteType, inviter, target, tokenID string) Identifier {
	return Identifier{
		Persistence: p,
		Subject:     Subject{Kind: "usr", ID: inviter},
		Type:        TokenType{Kind: TypeInvite, Code: typ.Code, TargetID: target},
		TokenID:     tokenID,
	}
}

// AccessID returns the identifier of an access token of user.
func AccessID(p Persistence, user, session, tokenID string) Identifier {
	return Identifier{
		Persistence: p,
		Subject:     Subject{Kind: "usr", ID: user},
		Type:        TokenType{Kind: TypeAccess, SessionID: session},
		TokenID:     tokenID,
	}
}
