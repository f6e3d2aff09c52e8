package tokens_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// A root key, as the issuer and the edge hold it. Load real ones from a
// secret store, never from source code.
var secret = []byte("example root key, 32 bytes long!")

// Mint an invite into the group "developers", from bob, usable until the
// end of 2030 and only by alice.
func ExampleMint() {
	id := tokens.InviteID(tokens.Persistence{Named: true}, "bob", "developers", "inv1")
	invite, err := tokens.Mint(secret, "onezone.example", id,
		tokens.TimeCaveat(time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC)),
		"consumer = usr-alice")
	if err != nil {
		panic(err)
	}
	e, _ := tokens.Examine(invite)
	fmt.Println(id)
	fmt.Println(e.Persistence, e.OnezoneDomain, len(e.Caveats), "caveats")
	// Output:
	// 2/nmd/usr-bob/ujg:developers:/inv1
	// named onezone.example 2 caveats
}

// Authenticate a token with the keyring: the signature and the caveats'
// syntax, nothing that depends on the request. A token signed with
// another key is refused.
func ExampleKeyring_Authenticate() {
	keys, err := tokens.NewKeyring(secret, nil)
	if err != nil {
		panic(err)
	}
	id := tokens.InviteID(tokens.Persistence{Named: true}, "bob", "developers", "inv1")
	invite, _ := tokens.Mint(secret, "", id)
	forged, _ := tokens.Mint([]byte("not the root key"), "", id)

	tok, err := keys.Authenticate(invite)
	fmt.Println(tok.ID.Subject, tok.ID.Type.TargetID, err)
	_, err = keys.Authenticate(forged)
	fmt.Println(errors.Is(err, tokens.ErrSignature), tokens.KindOf(err))
	// Output:
	// usr-bob developers <nil>
	// true token signature is invalid
}

// Check an authenticated invite against one request: its time, address
// and consumer caveats must all hold for this caller, at this moment, from
// this address.
func ExampleToken_CheckInvite() {
	keys, _ := tokens.NewKeyring(secret, nil)
	id := tokens.InviteID(tokens.Persistence{Named: true}, "bob", "developers", "inv1")
	invite, _ := tokens.Mint(secret, "", id, "ip = 192.0.2.0/24", "consumer = usr-alice")
	tok, err := keys.Authenticate(invite)
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	alice := &tokens.Env{Now: now, ClientIP: netip.MustParseAddr("192.0.2.7"), UserID: "alice"}
	carol := &tokens.Env{Now: now, ClientIP: netip.MustParseAddr("192.0.2.7"), UserID: "carol"}
	elsewhere := &tokens.Env{Now: now, ClientIP: netip.MustParseAddr("198.51.100.1"), UserID: "alice"}

	fmt.Println(tok.CheckInvite(alice))
	fmt.Println(tokens.KindOf(tok.CheckInvite(carol)))     // answered 403 by the edge
	fmt.Println(tokens.KindOf(tok.CheckInvite(elsewhere))) // 400
	// Output:
	// <nil>
	// token is not meant for this user
	// token caveat is not satisfied
}

// A Verifier runs both steps; its Env builds what the caveats are checked
// against from the request's time, client address and user.
func ExampleVerifier_VerifyInvite() {
	keys, _ := tokens.NewKeyring(secret, nil)
	v := tokens.Verifier{Keys: keys}
	id := tokens.InviteID(tokens.Persistence{Named: true}, "bob", "developers", "inv1")
	invite, _ := tokens.Mint(secret, "", id, tokens.TimeCaveat(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)))

	tok, err := v.VerifyInvite(invite, v.Env(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "192.0.2.7", "alice"))
	fmt.Println(tok.ID.Type.TargetID, err)
	_, err = v.VerifyInvite(invite, v.Env(time.Date(2027, 6, 1, 0, 0, 0, 0, time.UTC), "192.0.2.7", "alice"))
	fmt.Println(errors.Is(err, tokens.ErrExpired))
	// Output:
	// developers <nil>
	// true
}

// Examine says what any token claims, in Onezone's JSON, without
// verifying it: for a page that shows an invite before the user joins.
func ExampleExamine() {
	id := tokens.InviteID(tokens.Persistence{Named: true}, "bob", "developers", "inv1")
	invite, _ := tokens.Mint(secret, "onezone.example", id, "time < 1924992000")
	e, err := tokens.Examine(invite)
	if err != nil {
		panic(err)
	}
	out, _ := json.Marshal(e)
	fmt.Println(string(out))
	// Output:
	// {"onezoneDomain":"onezone.example","id":"inv1","persistence":"named","subject":{"type":"user","id":"bob"},"type":{"inviteToken":{"groupId":"developers","inviteType":"userJoinGroup","parameters":{}}},"caveats":[{"type":"time","validUntil":1924992000}]}
}

func ExampleToken_CheckJoin() {
	keys, _ := tokens.NewKeyring(secret, nil)
	gjg, _ := tokens.InviteTypeByName("groupJoinGroup")
	// An invite for a group to join the group "physics".
	id := tokens.InviteIDOf(tokens.Persistence{Named: true}, gjg, "bob", "physics", "inv2")
	invite, _ := tokens.Mint(secret, "", id)
	tok, err := keys.Authenticate(invite)
	if err != nil {
		panic(err)
	}
	env := &tokens.Env{Now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), UserID: "alice"}

	// Group "optics" joins, alice presenting the invite (POST /groups/optics/parents/join).
	fmt.Println(tok.CheckJoin(gjg, tokens.Entity{Type: tokens.EntityGroup, ID: "optics"}, env))
	// The group it invites into cannot join itself.
	fmt.Println(tokens.KindOf(tok.CheckJoin(gjg, tokens.Entity{Type: tokens.EntityGroup, ID: "physics"}, env)))
	// On the user route it is an invite of the wrong type.
	fmt.Println(tokens.KindOf(tok.CheckInvite(env)))
	// Output:
	// <nil>
	// an entity cannot join itself
	// token is of the wrong type
}
