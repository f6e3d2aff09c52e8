// Package tokens reads, verifies and mints Onedata tokens: the invites and
// access tokens that the group_join Caddy handler checks at the edge. It is
// plain Go (no Caddy), so a membership backend or a tool can import it and
// reach the same verdict the edge does.
//
// An Onedata token is a macaroon. Its identifier says what the token is,
//
//	2/<persistence>/<subject>/<type>/<tokenId>
//
// for example 2/nmd/usr-bob/ujg:developers:/8c3lh7vx… for a named invite,
// from bob, into the group developers. Its first-party caveats narrow where,
// when and by whom it may be used ("time < 1767225600", "ip = 192.0.2.0/24",
// "consumer = usr-alice"), and its signature is an HMAC chain over the
// identifier and every caveat, rooted in a secret only the issuer holds. A
// holder can add caveats but never remove one, and nobody without the root
// key can make a valid token. Tokens minted here are Onedata-shaped, and
// Onedata's own tokens verify.
//
// # Tokens
//
// A [Token] is what is left once a serialized token has been decoded, its
// identifier parsed, its signature verified with the right key and its
// caveats parsed. Its fields are safe to read: ID (an [Identifier]: the
// persistence, the subject, the type with an invite's target, the token id),
// Caveats and Expires (the earliest time caveat). What a Token does not yet
// say is whether it may be used for this request: that depends on the
// request.
//
// # Authenticate versus Check
//
// Verification has two steps, because they depend on different things:
//
//   - [Keyring.Authenticate] depends only on the token string and the keys.
//     It decodes the token (every serialized form Onedata uses: see
//     [Decode]), parses the identifier, chooses the key from it, checks the
//     signature chain and parses each caveat. Its result is the same every
//     time for the same string and keyring, so it can be cached (the
//     handler caches it by the token's SHA-256, never by the token).
//     [Keyring.AuthenticateTo] does the same into a Token the caller keeps
//     for reuse, caveat array included: for tokens checked once and
//     dropped, it allocates only the Token's strings.
//   - [Token.CheckJoin], [Token.CheckInvite] and [Token.CheckAccess]
//     depend on the request: the clock, the client address, the current
//     user, this service's id, the join asked for and a [Geo] database, all
//     in an [Env]. They check that the token is the kind asked for (an
//     invite of the join's [InviteType]; a user's access token whose api
//     caveats allow the join) and that every caveat holds. They do no
//     cryptography and run on every request, cached Token or not.
//
// # Invite types
//
// Onezone defines fourteen invite types ([InviteTypes]); twelve are
// consumed by a join (userJoinGroup, groupJoinGroup, userJoinSpace, …),
// each naming who joins ([InviteType.Joiner]) and what
// ([InviteType.Target]) as [EntityType] values. [Token.CheckJoin] checks an
// invite for one join by one [Entity]: its type, its caveats, its consumer
// caveats, and that the entity is not joining itself ([KindSelfJoin]).
// [Token.CheckInvite] is CheckJoin for userJoinGroup by the caller. What
// it cannot know is the backend's: whether the caller may act for the
// joining entity, and whether the issuer may still invite.
//
// A [Verifier] bundles a [Keyring], a [Geo] and the service id, and its
// [Verifier.VerifyInvite] and [Verifier.VerifyAccess] run both steps.
// A Token is valid for a request only when Authenticate and the Check both
// returned nil.
//
// # Keys
//
// [NewKeyring] takes a default secret and secrets per generation of
// temporary tokens. The key of a token is chosen from its identifier, never
// by trying keys: named ("nmd") tokens use the default key; with no
// generation keys the default key verifies every token; otherwise a
// "tmp-N" token needs the key of generation N, a generation below the
// lowest configured one is revoked ([ErrRevoked]) and any other missing
// generation has no key ([ErrNoKey]). Only keys derived from the secrets
// are kept, and a Keyring never changes once built: load new keys by
// building a new one.
//
// # Fail closed
//
// Anything not understood is refused, never skipped:
//
//   - A token must be exactly one macaroon of at most [MaxTokenSize] bytes
//     and [MaxCaveats] caveats: trailing bytes, a second macaroon, a
//     third-party caveat (no discharge is ever accepted) or an identifier
//     that does not parse strictly is refused.
//   - Every caveat must be known and well-formed at Authenticate, and
//     satisfied at Check. A caveat that cannot be checked fails: an ip, asn
//     or geo caveat when the client address is unknown, an asn or geo
//     caveat without a [Geo], a lookup error.
//   - Caveats meant for access tokens (interface, service, api) fail on an
//     invite; a consumer caveat fails on an access token. A consumer caveat
//     on an invite matches usr- entries only, since group and provider
//     membership is not known here.
//   - The key is chosen, never searched for; signatures are compared in
//     constant time.
//
// # Errors
//
// Every refusal is an [*Error] whose [Kind] says why; its text names the
// reason and, for caveats, the caveat's kind, and never contains the token,
// a signature or a key. Test for a kind with [KindOf] or with errors.Is and
// the sentinels:
//
//	KindMalformed   ErrMalformed   not exactly one well-formed macaroon, or a bad identifier
//	KindTooLarge    ErrTooLarge    over MaxTokenSize
//	KindThirdParty  ErrThirdParty  has a third-party caveat
//	KindNoKey       ErrNoKey       no key for the token's persistence or generation
//	KindRevoked     ErrRevoked     generation below the lowest configured one (or revoked by id in a store)
//	KindSignature   ErrSignature   the signature chain does not verify
//	KindWrongType   ErrWrongType   a valid token of another kind than asked for (an invite of another type, not a user's access token)
//	KindExpired     ErrExpired     a time caveat has passed
//	KindCaveat      ErrCaveat      a caveat is unknown, malformed or not satisfied (Error.Caveat names it)
//	KindConsumer    ErrConsumer    an invite's consumer caveat excludes the current user
//	KindUsedUp      ErrUsedUp      a named invite's usage limit is reached (set by stores, not by this package)
//	KindUnknown     ErrUnknown     a named invite is not registered (set by stores, not by this package)
//	KindSelfJoin    ErrSelfJoin    the invite's target is the entity that would join it
//
// Authenticate returns the first six kinds and KindCaveat (for a caveat it
// cannot parse); the Check methods return KindWrongType, KindExpired,
// KindCaveat and KindConsumer, and CheckJoin KindSelfJoin. CheckJoin checks
// consumer caveats after every other caveat, so KindConsumer always means
// "a valid invite, but not for this user". The
// group_join handler maps each kind to an HTTP answer in one table; a
// backend can do the same.
//
// # Example
//
//	keys, err := tokens.NewKeyring(secret, nil)
//	if err != nil {
//		return err
//	}
//	v := &tokens.Verifier{Keys: keys} // no Geo: asn and geo caveats fail
//	env := v.Env(time.Now(), clientIP, "alice")
//	invite, err := v.VerifyInvite(serialized, env)
//	switch {
//	case errors.Is(err, tokens.ErrExpired):
//		// tell the user to ask for a new invite
//	case tokens.KindOf(err) == tokens.KindConsumer:
//		// a valid invite for somebody else
//	case err != nil:
//		// refused: err says why, without the token
//	default:
//		group := invite.ID.Type.TargetID // the group the invite is for
//		_ = group
//	}
//
// Minting is the other direction: [Mint] signs an identifier built by
// [InviteID] or [AccessID] (with a fresh [NewTokenID]) and caveats such as
// [TimeCaveat], and serializes the token in Onedata's form.
package tokens
