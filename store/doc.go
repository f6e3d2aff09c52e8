// Package store keeps the usage-limit and revocation state of named
// ("nmd") invites, so that the group_join edge can reserve one use of an
// invite atomically before forwarding a join, commit it when the membership
// backend answers 2xx and release it otherwise. A single-use invite admits
// exactly one member however many requests — and, with Redis, however many
// Caddy instances — race for it.
//
// The package is plain Go and does not import Caddy. Two implementations:
//
//   - Memory (NewMemory): one process. A mutex-protected map; keeping it
//     across config reloads is up to the caller.
//   - Redis (NewRedis): a fleet of instances sharing one Redis server, a
//     Sentinel-managed primary (RedisOptions.Sentinels, followed through
//     failovers) or a Redis Cluster (RedisOptions.Cluster). Every step
//     that checks and mutates is a Lua script (EVALSHA, falling back to
//     EVAL), hence atomic across instances.
//
// # Protocol
//
//	res, err := st.Reserve(ctx, tokenID) // ErrUnknown, ErrRevoked, ErrUsedUp → 400; ErrUnavailable → 503
//	...forward...
//	if 2xx { err = res.Commit(ctx) } else { err = res.Release(ctx) } // log err
//
// A reservation that is neither committed nor released (crashed instance,
// lost connection, lost write) lapses after Options.ReservationTTL
// (default 1 minute). The Memory store then gives its use back; a Commit
// that arrives after that still counts the use (the member was admitted)
// and returns ErrReservationExpired, and Used may then exceed Limit. The
// Redis store instead counts a lapsed reservation as used: its outcome is
// unknown, and after a failover the commit that decided it may be the
// write that was lost, so giving the use back could admit one member too
// many. A late Commit then counts nothing more (ErrReservationExpired), a
// late Release gives nothing back. Keep ReservationTTL above the longest
// upstream request.
//
// Invites count as used up when committed uses plus live reservations reach
// the limit, so a request may be refused while another one holding the last
// use is in flight and later releases it; that is the price of never
// admitting one member too many.
//
// # Redis key schema
//
// With the default prefix "groupjoin:" (RedisOptions.KeyPrefix) and token
// id ID, an invite has two keys. The id is wrapped in braces, a Redis
// Cluster hash tag, so both keys of an invite live in the same slot:
//
//	groupjoin:invite:{ID}       hash, the invite record
//	groupjoin:invite:{ID}:res   sorted set, the live reservations
//
// Fields of the hash (all values decimal strings):
//
//	limit       usage limit: an integer >= 1, or -1 for unlimited. Missing
//	            or anything else admits nobody.
//	used        committed uses (missing = 0)
//	revoked     "1" when revoked. Any value other than missing, "", "0" or
//	            "false" counts as revoked.
//	created     creation time, Unix milliseconds (informational)
//	revoked_at  first revocation time, Unix milliseconds (informational)
//
// The hash may carry a TTL (PEXPIRE); when it expires the invite becomes
// unknown. Revocation keeps an existing TTL: the record only has to outlive
// the token's time caveat. A revoked record is never replaced by Register.
//
// Members of the sorted set are random reservation ids, scores are their
// expiry in Unix milliseconds. Reserve moves lapsed members (score <= now)
// into "used" before counting; the set lives as long as the hash (same
// TTL, or none).
//
// A membership backend can manage invites with plain commands, e.g. with
// redis-cli (quote the braces from the shell):
//
//	# register a single-use invite valid for 7 days: HSETNX answers 1 if it
//	# created the record (then set the TTL), 0 if the id already has one
//	# (then leave it alone — it may be revoked)
//	HSETNX 'groupjoin:invite:{ID}' limit 1
//	PEXPIRE 'groupjoin:invite:{ID}' 604800000
//
//	# the same in one atomic step; arguments: limit, ttl ms (0 = none)
//	EVAL "if redis.call('HSETNX',KEYS[1],'limit',ARGV[1])==0 then return 0 end
//	  if tonumber(ARGV[2])>0 then redis.call('PEXPIRE',KEYS[1],ARGV[2]) end
//	  redis.call('DEL',KEYS[2]) return 1" 2 \
//	  'groupjoin:invite:{ID}' 'groupjoin:invite:{ID}:res' 1 604800000
//
//	# unlimited invite without expiry
//	HSETNX 'groupjoin:invite:{ID}' limit -1
//
//	# revoke (also blocks an id that was never registered)
//	HSET 'groupjoin:invite:{ID}' revoked 1
//
//	# inspect
//	HGETALL 'groupjoin:invite:{ID}'
//	ZCOUNT 'groupjoin:invite:{ID}:res' (<now-ms> +inf
//
// When registering an id again after its record expired, DEL
// 'groupjoin:invite:{ID}:res' too (the EVAL above and Register do), so
// reservations left from the old record do not count against the new one.
//
// Do not write "used" or the sorted set by hand while instances are
// serving.
//
// # Clock
//
// Every timestamp the Redis store uses — reservation expiries, the creation
// stamp, "now" in Get — comes from the Redis server's clock (the TIME
// command inside the scripts), never from an instance's. The instances of a fleet may be skewed
// against each other and it does not matter: there is one clock. Scripts
// are replicated by effect (Redis >= 5 by default; the scripts ask for it
// on 3.2–4.x), so replicas store the computed scores; after a failover the
// new primary's clock applies, and reservation lifetimes shift by the skew
// between the two servers. Options.Now only drives the Memory store.
//
// # Failure behaviour
//
// Anything that goes wrong talking to Redis is ErrUnavailable (wrapping the
// cause; neither the URL nor the password ever appears in an error), and
// the edge must then admit nobody. Dial, read and write timeouts default to
// one second, dialing is tried once and commands are not retried (a retried
// Reserve or Register is not idempotent), so a dead or stuck Redis fails
// requests within about a second. NewRedis does not contact Redis; use
// Ping to check it at provisioning.
//
// # Durability and failover
//
// Redis replicates asynchronously: a write the primary acknowledged can be
// lost when a replica is promoted. RedisOptions.MinReplicas makes every
// write that decides admission wait, on the connection that sent it, until
// that many replicas acknowledged it (WAIT, bounded by
// RedisOptions.ReplicaTimeout). Then:
//
//   - Reserve not replicated in time: the use is given back and
//     ErrNotReplicated (an ErrUnavailable) returned; nothing is forwarded.
//   - Commit not replicated in time: the use stays counted on the primary,
//     ErrNotReplicated is returned for the log. If that primary is lost, the
//     replicated reservation lapses on the new one and counts as used.
//   - Register and Revoke not replicated in time: ErrNotReplicated; the
//     write may still be on the primary (Revoke can simply be repeated).
//   - Release does not wait: a lost release lapses and counts as used.
//
// Together with lapsed reservations counting as used, no failover can make
// an invite admit more members than its limit; what can be lost is a use
// (a reservation whose request failed but whose release was lost, or one
// given back on the primary after a WAIT fell short while a replica had it).
// With a Cluster, the script and WAIT go to the primary that owns the
// invite's slot (both keys share it through the {id} hash tag); a MOVED
// answer refreshes the slot map and retries. After a failover the promoted
// replica has no replica of its own until one rejoins, so MinReplicas
// refuses writes (fail closed) meanwhile.
//
// Because Commit is not retried, a Commit whose reply was lost may already
// have counted; calling it again is safe: a reservation that is neither
// present nor expired counts nothing and Commit returns nil. The same
// happens after Redis lost its data (restart without persistence), when
// every invite also becomes unknown and is refused until registered again
// — give the Redis of a fleet persistence (appendonly yes) if invites must
// survive its restarts.
package store
