package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Store-backed subcommands: `mint invite --register` and `revoke`. They
// talk to the invite store either through Caddy's admin API (the
// admin.api.group_join routes, default) or directly to Redis.

// ExitStore is the exit code when the invite store refuses an operation
// (e.g. the id is already registered) or cannot be reached.
const ExitStore = 3

// DefaultAdminAddress is Caddy's default admin endpoint.
const DefaultAdminAddress = "localhost:2019"

// RedisPasswordEnv, when set, is the Redis password (overriding the URL's),
// so that it need not appear on the command line.
const RedisPasswordEnv = "GROUP_JOIN_REDIS_PASSWORD"

// RedisSentinelPasswordEnv, when set, is the password of the sentinels.
const RedisSentinelPasswordEnv = "GROUP_JOIN_REDIS_SENTINEL_PASSWORD"

// storeOpTimeout bounds one store operation of the CLI.
const storeOpTimeout = 10 * time.Second

// storeFlags select the store: --admin <address>, --redis <url>,
// --redis-sentinels <addrs> with --redis-master <name>, or
// --redis-cluster <addrs>.
type storeFlags struct {
	admin, redis, redisPrefix                   setString
	sentinels, master, cluster, db, minReplicas setString
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.Var(&s.admin, "admin", "")
	fs.Var(&s.redis, "redis", "")
	fs.Var(&s.redisPrefix, "redis-prefix", "")
	fs.Var(&s.sentinels, "redis-sentinels", "")
	fs.Var(&s.master, "redis-master", "")
	fs.Var(&s.cluster, "redis-cluster", "")
	fs.Var(&s.db, "redis-db", "")
	fs.Var(&s.minReplicas, "min-replicas", "")
}

// direct reports whether the store is reached directly in Redis.
func (s *storeFlags) direct() bool { return s.redis.set || s.sentinels.set || s.cluster.set }

func (s *storeFlags) given() bool {
	return s.admin.set || s.direct() || s.redisPrefix.set || s.master.set || s.db.set || s.minReplicas.set
}

func (s *storeFlags) check() error {
	modes := 0
	for _, set := range []bool{s.admin.set, s.redis.set, s.sentinels.set, s.cluster.set} {
		if set {
			modes++
		}
	}
	switch {
	case modes > 1:
		return errors.New("--admin, --redis, --redis-sentinels and --redis-cluster exclude each other")
	case s.redisPrefix.set && !s.direct():
		return errors.New("--redis-prefix needs --redis, --redis-sentinels or --redis-cluster")
	case s.minReplicas.set && !s.direct():
		return errors.New("--min-replicas needs --redis, --redis-sentinels or --redis-cluster")
	case s.master.set != s.sentinels.set:
		return errors.New("--redis-sentinels and --redis-master go together")
	case s.db.set && !s.sentinels.set:
		return errors.New("--redis-db needs --redis-sentinels (a --redis URL names its database)")
	case s.admin.set && s.admin.v == "":
		return errors.New("--admin needs an address, e.g. localhost:2019")
	case s.redis.set && s.redis.v == "":
		return errors.New("--redis needs a URL, e.g. redis://127.0.0.1:6379/0")
	case s.sentinels.set && len(splitAddrs(s.sentinels.v)) == 0:
		return errors.New("--redis-sentinels needs host:port[,host:port…]")
	case s.cluster.set && len(splitAddrs(s.cluster.v)) == 0:
		return errors.New("--redis-cluster needs host:port[,host:port…]")
	case s.master.set && s.master.v == "":
		return errors.New("--redis-master needs the primary's name")
	}
	if s.db.set {
		if n, err := strconv.Atoi(s.db.v); err != nil || n < 0 {
			return fmt.Errorf("--redis-db: %q is not a database number", s.db.v)
		}
	}
	if s.minReplicas.set {
		if n, err := strconv.Atoi(s.minReplicas.v); err != nil || n < 0 {
			return fmt.Errorf("--min-replicas: %q is not a number of replicas", s.minReplicas.v)
		}
	}
	return nil
}

func splitAddrs(v string) []string {
	var out []string
	for _, a := range strings.Split(v, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// describe names the store for messages, without credentials.
func (s *storeFlags) describe() string {
	switch {
	case s.sentinels.set:
		return "Redis primary " + s.master.v + " via sentinels " + strings.Join(splitAddrs(s.sentinels.v), ",")
	case s.cluster.set:
		return "Redis Cluster at " + strings.Join(splitAddrs(s.cluster.v), ",")
	case s.redis.set:
		if u, err := url.Parse(s.redis.v); err == nil && u.Host != "" {
			return "Redis at " + u.Host
		}
		return "Redis"
	}
	return "the admin API at " + s.adminAddress()
}

func (s *storeFlags) adminAddress() string {
	if s.admin.set {
		return s.admin.v
	}
	return DefaultAdminAddress
}

// open returns the selected store and a function that closes it. With
// Runner.OpenStore set, it is asked instead, with the --redis URL or
// "http://<admin address>" as spec.
func (s *storeFlags) open(r *Runner, ctx context.Context) (InviteStore, func(), error) {
	if r.OpenStore != nil {
		spec := s.redis.v
		switch {
		case s.sentinels.set:
			spec = "sentinel://" + s.master.v + "@" + strings.Join(splitAddrs(s.sentinels.v), ",")
		case s.cluster.set:
			spec = "cluster://" + strings.Join(splitAddrs(s.cluster.v), ",")
		case !s.redis.set:
			spec = "http://" + s.adminAddress()
		}
		st, err := r.OpenStore(ctx, spec)
		return st, func() {}, err
	}
	if s.direct() {
		store.QuietRedisLogs()
		db, _ := strconv.Atoi(s.db.v)
		minRep, _ := strconv.Atoi(s.minReplicas.v)
		rs, err := store.NewRedis(store.RedisOptions{
			URL:              s.redis.v,
			Sentinels:        splitAddrs(s.sentinels.v),
			MasterName:       s.master.v,
			SentinelPassword: r.Getenv(RedisSentinelPasswordEnv),
			Cluster:          splitAddrs(s.cluster.v),
			DB:               db,
			Password:         r.Getenv(RedisPasswordEnv),
			KeyPrefix:        s.redisPrefix.v,
			MinReplicas:      minRep,
		})
		if err != nil {
			return nil, nil, err
		}
		return rs, func() { _ = rs.Close() }, nil
	}
	ac, err := newAdminClient(s.adminAddress())
	if err != nil {
		return nil, nil, err
	}
	return ac, ac.close, nil
}

// registerFlags are the extra flags of `mint invite`.
type registerFlags struct {
	on    bool
	uses  string
	store storeFlags
}

func (g *registerFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&g.on, "register", false, "")
	fs.StringVar(&g.uses, "uses", "1", "")
	g.store.register(fs)
}

// check validates the flags before anything is minted.
func (g *registerFlags) check(fs *flag.FlagSet) error {
	if !g.on {
		if flagWasSet(fs, "uses") || g.store.given() {
			return errors.New("--uses, --admin, --redis and --redis-prefix need --register")
		}
		return nil
	}
	if _, err := parseUses(g.uses); err != nil {
		return err
	}
	return g.store.check()
}

func parseUses(s string) (int64, error) {
	if s == "unlimited" {
		return store.Unlimited, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--uses: %q is not a whole number >= 1 or unlimited", s)
	}
	return n, nil
}

// registerMinted registers a freshly minted invite's token id with its
// usage limit, until the token's time caveat. Nothing has been printed
// yet: on failure the token is never shown.
func (r *Runner) registerMinted(path string, g *registerFlags, m Minted) int {
	if !m.ID.Persistence.Named {
		return r.usageErr(path, "--register needs --persistence nmd: temporary invites are not looked up in the store (they are revoked by rotating their generation's key)")
	}
	limit, _ := parseUses(g.uses)
	var ttl time.Duration
	if !m.Expires.IsZero() {
		ttl = m.Expires.Sub(r.Now())
		if ttl <= 0 {
			return r.usageErr(path, "the token would expire before it is registered (use a longer --ttl)")
		}
		ttl = (ttl + time.Second - 1).Truncate(time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeOpTimeout)
	defer cancel()
	st, closeStore, err := g.store.open(r, ctx)
	if err != nil {
		return r.fail(path, ExitStore, "invite store (%s): %v", g.store.describe(), err)
	}
	defer closeStore()
	if err := st.Register(ctx, m.ID.TokenID, limit, ttl); err != nil {
		return r.fail(path, ExitStore, "registering token id %s in %s: %v (the token was not printed)", m.ID.TokenID, g.store.describe(), err)
	}
	until := "without expiry"
	if ttl > 0 {
		until = "until " + m.Expires.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(r.Stderr, "caddy group-join %s: registered token id %s in %s: %s, %s\n",
		path, m.ID.TokenID, g.store.describe(), usesText(limit), until)
	return ExitOK
}

func usesText(limit int64) string {
	switch limit {
	case store.Unlimited:
		return "unlimited uses"
	case 1:
		return "single use"
	}
	return strconv.FormatInt(limit, 10) + " uses"
}

func (r *Runner) revoke(args []string) int {
	const path = "revoke"
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	var sf storeFlags
	sf.register(fs)
	pos, code, done := r.parseFlags(path, fs, args)
	if done {
		return code
	}
	if len(pos) != 1 {
		return r.usageErr(path, "want exactly one token id (or the token itself)")
	}
	if err := sf.check(); err != nil {
		return r.usageErr(path, "%v", err)
	}
	id, err := revokedID(pos[0])
	if err != nil {
		return r.usageErr(path, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeOpTimeout)
	defer cancel()
	st, closeStore, err := sf.open(r, ctx)
	if err != nil {
		return r.fail(path, ExitStore, "invite store (%s): %v", sf.describe(), err)
	}
	defer closeStore()
	if err := st.Revoke(ctx, id); err != nil {
		return r.fail(path, ExitStore, "revoking token id %s in %s: %v", id, sf.describe(), err)
	}
	fmt.Fprintf(r.Stdout, "revoked %s\n", id)
	return ExitOK
}

// revokedID takes a token id, or a whole token whose id is wanted. The
// argument is never echoed: it may be a token.
func revokedID(arg string) (string, error) {
	if m, err := tokens.Decode(arg); err == nil {
		id, err := tokens.ParseIdentifier(string(m.Id()))
		switch {
		case err != nil:
			return "", fmt.Errorf("the token's identifier is malformed: %v", err)
		case id.Legacy:
			return "", errors.New("the token has a legacy identifier without a token id")
		case !id.Persistence.Named:
			return "", fmt.Errorf("the token is temporary (%s): the store does not apply; revoke it by rotating its generation's key", id.Persistence)
		}
		return id.TokenID, nil
	}
	if tokens.ValidID(arg) {
		return arg, nil
	}
	return "", errors.New("the argument is neither a token id (1-256 of A-Z a-z 0-9 . _ ~ @ -) nor a token")
}

// adminClient is an InviteStore speaking to Caddy's admin API
// (admin.api.group_join).
type adminClient struct {
	base   string
	client *http.Client
}

// newAdminClient takes host:port, an http(s):// URL, or unix/<socket path>
// as Caddy's --address does.
func newAdminClient(addr string) (*adminClient, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	var base string
	switch {
	case strings.HasPrefix(addr, "unix/"):
		sock := strings.TrimPrefix(addr, "unix/")
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		base = "http://127.0.0.1"
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		base = strings.TrimSuffix(addr, "/")
	default:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--admin %q: want host:port, http(s)://host:port or unix/<path>", addr)
		}
		base = "http://" + addr
	}
	return &adminClient{base: base, client: &http.Client{Transport: tr, Timeout: storeOpTimeout}}, nil
}

func (a *adminClient) close() { a.client.CloseIdleConnections() }

// Register implements InviteStore.
func (a *adminClient) Register(ctx context.Context, id string, limit int64, ttl time.Duration) error {
	body := map[string]any{"id": id, "uses": limit}
	if limit == store.Unlimited {
		body["uses"] = "unlimited"
	}
	if ttl > 0 {
		body["ttl"] = ttl.String()
	}
	b, _ := json.Marshal(body)
	return a.call(ctx, "/group-join/invites", b, http.StatusCreated)
}

// Revoke implements InviteStore.
func (a *adminClient) Revoke(ctx context.Context, id string) error {
	return a.call(ctx, "/group-join/invites/"+url.PathEscape(id)+"/revoke", nil, http.StatusOK)
}

func (a *adminClient) call(ctx context.Context, path string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == want {
		return nil
	}
	msg := errorMessage(raw)
	var kind error
	switch resp.StatusCode {
	case http.StatusConflict:
		kind = store.ErrExists
	case http.StatusServiceUnavailable:
		kind = store.ErrUnavailable
	case http.StatusNotFound:
		if strings.Contains(msg, "no group_join store") || strings.Contains(msg, "404 page not found") {
			msg += " (is this Caddy running group_join with a store, built with the plugin?)"
		}
	}
	return &adminError{kind: kind, msg: fmt.Sprintf("admin API answered %d: %s", resp.StatusCode, msg)}
}

// errorMessage is the message of an error answer in any of the forms a
// Caddy with group_join writes: Caddy's admin API's {"error": "<message>"},
// the documented {"error": "<code>", "error_description": "<text>"}, and
// Onezone's {"error": {"id": "<id>", "description": "<text>"}}; anything
// else as it came.
func errorMessage(raw []byte) string {
	var e struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
	}
	if json.Unmarshal(raw, &e) == nil && len(e.Error) > 0 {
		var code string
		if json.Unmarshal(e.Error, &code) == nil && code != "" {
			if e.Description != "" {
				return code + ": " + e.Description
			}
			return code
		}
		var oz struct {
			ID          string `json:"id"`
			Description string `json:"description"`
		}
		if json.Unmarshal(e.Error, &oz) == nil && oz.ID != "" {
			return oz.ID + ": " + oz.Description
		}
	}
	return strings.TrimSpace(string(raw))
}

// adminError is an admin API refusal; it unwraps to the store error it
// stands for (store.ErrExists, store.ErrUnavailable), if any.
type adminError struct {
	kind error
	msg  string
}

func (e *adminError) Error() string { return e.msg }
func (e *adminError) Unwrap() error { return e.kind }

// registerFlagsUsage is the registration part of `mint invite --help`.
const registerFlagsUsage = `Registration in the invite store (named invites; see docs/contract.md
and docs/high-availability.md):
  --register                   register the token id before printing the
                               token, until its time caveat (needs
                               --persistence nmd); if registration fails the
                               token is not printed (exit 3)
  --uses <N>|unlimited         usage limit (default 1: single use)
  --admin <address>            through Caddy's admin API (default
                               localhost:2019; also http://host:port or
                               unix/<socket>)
  --redis <url>                directly in Redis: redis://[:password@]host:port/db
                               or rediss://… (password also from
                               $GROUP_JOIN_REDIS_PASSWORD)
  --redis-prefix <prefix>      key prefix (default groupjoin:), as the
                               handler's store key_prefix
  --redis-sentinels <h:p,…>    directly in Redis, through these sentinels
  --redis-master <name>          (with the primary's name; sentinel password
                               from $GROUP_JOIN_REDIS_SENTINEL_PASSWORD)
  --redis-db <n>               database with --redis-sentinels (default 0)
  --redis-cluster <h:p,…>      directly in a Redis Cluster (seed nodes)
  --min-replicas <n>           count the registration only once n replicas
                               hold it (as the handler's min_replicas)
`

const revokeHelp = `Revokes a named invite in the invite store, at once for every Caddy
instance using that store. The argument is the token id (the last segment
of the identifier, as printed by 'inspect' or 'mint --json') or the token
itself (it is never printed). Revoking an id that was never registered
blocks it: it can no longer be registered. Revocation is idempotent.
Temporary (tmp) invites are not in the store: rotate their generation's key.

Store:
  --admin <address>            through Caddy's admin API (default
                               localhost:2019; also http://host:port or
                               unix/<socket>)
  --redis <url>                directly in Redis (password also from
                               $GROUP_JOIN_REDIS_PASSWORD)
  --redis-sentinels <h:p,…>    directly in Redis, through these sentinels,
  --redis-master <name>          watching this primary (sentinel password
                               from $GROUP_JOIN_REDIS_SENTINEL_PASSWORD)
  --redis-db <n>               database with --redis-sentinels (default 0)
  --redis-cluster <h:p,…>      directly in a Redis Cluster (seed nodes)
  --redis-prefix <prefix>      key prefix (default groupjoin:)
  --min-replicas <n>           report success only once n replicas hold
                               the revocation

Prints "revoked <id>". Exit codes: 0 revoked; 2 usage error; 3 the store
refused or could not be reached.

Example:
  caddy group-join revoke 8c3lh7vx2kq5m4y9r1tj6wbz0dnp3sfa --admin localhost:2019
`
