package cli

const topHelp = `Mints, inspects and revokes the Onedata-style tokens that the group_join
handler verifies: user-join-group invites and users' access tokens.

Commands:
  mint invite   mint a user-join-group invite (prints the token)
  mint access   mint a user's access token (prints the token)
  inspect       decode a token, print its fields, verify it with a key
  revoke        revoke a named invite in the invite store (admin API or Redis)

Run 'caddy group-join <command> --help' for a command's flags.

Exit codes: 0 ok; 1 the token does not verify or a caveat fails
(inspect); 2 usage error (bad flags, bad caveat, missing key, bad ttl);
3 the invite store refused or could not be reached (--register, revoke).
`

const keyFlagsUsage = `Key (the first one given wins; the key is never printed):
  --key <secret>               the key itself (other local users can see it
                               in the process list: prefer the next two)
  --key-env <VAR>              read the key from environment variable VAR
  --key-file <path>            read the key from a file (one trailing
                               newline is trimmed, as with Caddy's {file.*})
  (none of them)               environment variable GROUP_JOIN_KEY
`

const caveatFlagsUsage = `Caveats (list flags take comma-separated values and may be repeated):
  --ip <cidr>[,…]              client addresses: ip = 10.0.0.0/8|…
  --asn <n>[,…]                client networks: asn = 64512|…
  --country <CC>[,…]           geo.country = PL|FR
  --not-country <CC>[,…]       geo.country != PL|FR
  --region <name>[,…]          geo.region = EU|Europe|… (Africa, Antarctica,
                               Asia, Europe, EU, NorthAmerica, Oceania,
                               SouthAmerica)
  --not-region <name>[,…]      geo.region != …
  --caveat '<caveat>'          any caveat in Onedata's syntax, checked before
                               minting (repeatable), e.g. 'time < 1893456000'
`

const mintHelp = `Mints a token in Onedata's serialized form and prints it on stdout, one
line.

Commands:
  mint invite   a user-join-group invite: --group <id> --inviter <user>
  mint access   a user's access token: --user <id>

Run 'caddy group-join mint invite --help' or 'caddy group-join mint access
--help' for the flags.
`

const mintInviteHelp = `Mints an invite of one of Onezone's join types (default userJoinGroup)
and prints it on stdout in Onedata's serialized form, one line.
Identifier: 2/<persistence>/usr-<inviter>/<code>:<target>:/<token id>,
e.g. ujg:<group> for userJoinGroup, ujs:<space> for userJoinSpace.

Token:
  --type <invite type>         userJoinGroup (default), groupJoinGroup,
                               userJoinSpace, groupJoinSpace,
                               harvesterJoinSpace, userJoinHarvester,
                               groupJoinHarvester, spaceJoinHarvester,
                               userJoinCluster, groupJoinCluster,
                               userJoinAtmInventory, groupJoinAtmInventory
  --group <id>                 the group to join (required for the
                               *JoinGroup types)
  --space <id>                 the space to join (*JoinSpace)
  --harvester <id>             the harvester to join (*JoinHarvester)
  --cluster <id>               the cluster to join (*JoinCluster)
  --atm-inventory <id>         the automation inventory to join
                               (*JoinAtmInventory)
  --inviter <user>             bare user id of the inviter: the subject
                               usr-<user> (required)
  --persistence nmd|tmp        named, or temporary (default tmp: valid on its
                               own, revoked by rotating its generation's key;
                               named invites need registration when the
                               handler has an invite store)
  --generation <N>             generation of a temporary token: tmp-N
                               (default 0); sign with that generation's key
  --token-id <id>              token id (default: 32 random characters)
  --location <location>        macaroon location (default onezone)
  --ttl <duration>             lifetime: time < now+ttl; e.g. 30m, 24h, 7d,
                               1d12h; 0 = no time caveat (default 24h)
  --consumer <user>[,…]        only these users may join with it:
                               alice → consumer = usr-alice; usr-/grp-/prv-
                               entries are kept as given; * is any user

` + caveatFlagsUsage + `
` + keyFlagsUsage + `
` + registerFlagsUsage + `
Output:
  --json                       print token, identifier, token_id, caveats
                               and expires as JSON
  --link <url>                 print the link form <url>#<token> for a join
                               page, e.g. --link https://example.org/join
                               (with --json: a "link" member)

Example:
  caddy group-join mint invite --group g1 --inviter bob --consumer alice \
      --ttl 7d --key-env GROUP_JOIN_KEY
  caddy group-join mint invite --group g1 --inviter bob --persistence nmd \
      --register --uses 5 --admin localhost:2019
`

const mintAccessHelp = `Mints an access token of a user and prints it on stdout in Onedata's
serialized form, one line. Identifier:
2/<persistence>/usr-<user>/act[:<session>]/<token id>. group_join accepts
it in X-Auth-Token, Authorization: Bearer or Macaroon.

Token:
  --user <id>                  bare user id: the subject usr-<id> (required)
  --session <id>               bind to a session: type act:<id>
  --persistence nmd|tmp        named, or temporary (default tmp)
  --generation <N>             generation of a temporary token: tmp-N
                               (default 0); sign with that generation's key
  --token-id <id>              token id (default: 32 random characters)
  --location <location>        macaroon location (default onezone)
  --ttl <duration>             lifetime: time < now+ttl; e.g. 30m, 1h, 7d;
                               0 = no time caveat (default 1h)

` + caveatFlagsUsage + `
` + keyFlagsUsage + `
Output:
  --json                       print token, identifier, token_id, caveats
                               and expires as JSON
`

const inspectHelp = `Decodes a token (from the argument; from stdin when it is - or missing;
a {"token": "…"} request body works too) and prints the serialized form
detected, the location, the identifier's fields, and each caveat with its
kind (time caveats: expiry in RFC3339 and whether it has passed).

With a key it also verifies the token: whether the signature verifies with
the key its identifier selects, and — checking it as an invite (ujg) or an
access token, as its type says, at the current time — which caveat would
fail and why. Without a key it only decodes.

` + keyFlagsUsage + `  --generation-key <N>=<secret>
                               the key of tmp-N tokens (repeatable); once any
                               is given, tmp-N needs generation N's key and
                               named tokens the default key, as with the
                               handler's "key <generation> <secret>"

Request (what caveats are checked against):
  --user <id>                  the user presenting an invite (consumer
                               caveats); alice or usr-alice
  --ip <address>               the client address (ip, asn, geo caveats)
  --geoip-db <path.mmdb>       country database (geo.country, geo.region)
  --asn-db <path.mmdb>         ASN database (asn)
  --service <ozw-id>           this service for access tokens' service
                               caveats (default ozw-onezone)

Output:
  --json                       print the report as JSON

Exit codes: 0 decoded (and, with a key, verifies and every caveat holds);
1 not a token, or it does not verify, or a caveat fails; 2 usage error.
`
