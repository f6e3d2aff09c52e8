package groupjoin

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	// A directive of its own rather than a handler directive: with
	// preview on, its path matcher also matches the preview paths.
	httpcaddyfile.RegisterDirective("group_join", parseDirective)
	// Before reverse_proxy means after basic_auth, forward_auth and
	// respond, so identity placeholders are set when group_join runs.
	httpcaddyfile.RegisterDirectiveOrder("group_join", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	group_join [<matcher>] {
//	    key [<generation>] <secret>           # repeatable; at least one
//	    identity access_token                 # repeatable; order = try order
//	    identity placeholder <placeholder>
//	    service <ozw-id>                      # default ozw-onezone
//	    geoip_db <path.mmdb>                  # country lookups (geo.*)
//	    asn_db <path.mmdb>                    # ASN lookups
//	    max_body <size>                       # default 64KiB
//	    location_prefix <prefix>              # default /user/groups/
//	    upstream_headers on|off               # default on
//	    store memory [{                       # one instance
//	        reservation_ttl <duration>        # default 1m
//	    }]
//	    store redis <redis-url> [{            # a fleet sharing one Redis primary
//	        password <password>
//	        key_prefix <prefix>               # default groupjoin:
//	        timeout <duration>                # default 1s
//	        reservation_ttl <duration>        # default 1m
//	        tls
//	        min_replicas <n> [<timeout>]      # default off; timeout 500ms
//	    }]
//	    store redis {                         # a fleet on Redis Sentinel
//	        sentinels <host:port>...
//	        master <name>
//	        sentinel_password <password>
//	        db <n>                            # default 0
//	        ...                               # the options above
//	    }
//	    store redis {                         # a fleet on Redis Cluster
//	        cluster <host:port>...            # seed nodes
//	        ...                               # the options above
//	    }
//	    preview [<examine_path> <verify_path>] # default /tokens/examine /tokens/verify_invite_token
//	}
//
// key and identity may be repeated; every other option may be given once.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]int) // single-valued option → line of its first use
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "key", "identity":
		default:
			if line, ok := seen[opt]; ok {
				return d.Errf("%s given twice (first at line %d)", opt, line)
			}
			seen[opt] = d.Line()
		}
		var err error
		switch opt {
		case "key":
			err = h.unmarshalKey(d)
		case "identity":
			err = h.unmarshalIdentity(d)
		case "service":
			h.Service, err = oneArg(d)
		case "geoip_db":
			h.GeoIPDB, err = oneArg(d)
		case "asn_db":
			h.ASNDB, err = oneArg(d)
		case "location_prefix":
			h.LocationPrefix, err = oneArg(d)
		case "max_body":
			h.MaxBody, err = unmarshalSize(d)
		case "upstream_headers":
			h.UpstreamHeaders, err = unmarshalOnOff(d)
		case "store":
			h.Store, err = unmarshalStore(d)
		case "preview":
			h.Preview, err = unmarshalPreview(d)
		default:
			err = d.Errf("unknown group_join option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	if len(h.Keys) == 0 {
		return d.Err("group_join needs at least one key")
	}
	return nil
}

// unmarshalKey parses key [<generation>] <secret>.
func (h *Handler) unmarshalKey(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	switch len(args) {
	case 1:
		h.Keys = append(h.Keys, Key{Secret: args[0]})
	case 2:
		gen, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil {
			return d.Errf("key generation must be a whole number, got %q", args[0])
		}
		h.Keys = append(h.Keys, Key{Generation: &gen, Secret: args[1]})
	default:
		return d.Err("key takes [<generation>] <secret>")
	}
	return nil
}

// unmarshalIdentity parses identity access_token|placeholder <placeholder>.
func (h *Handler) unmarshalIdentity(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	switch src := d.Val(); src {
	case SourceAccessToken:
		h.Identity = append(h.Identity, IdentitySource{Source: src})
	case SourcePlaceholder:
		if !d.NextArg() {
			return d.Err("identity placeholder needs a placeholder, e.g. {http.auth.user.id}")
		}
		h.Identity = append(h.Identity, IdentitySource{Source: src, Placeholder: d.Val()})
	default:
		return d.Errf("unknown identity source %q (want access_token or placeholder)", src)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// oneArg returns the option's only argument.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	var val string
	if !d.AllArgs(&val) {
		return "", d.ArgErr()
	}
	return val, nil
}

// unmarshalSize parses max_body <size>.
func unmarshalSize(d *caddyfile.Dispenser) (int64, error) {
	val, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	size, err := humanize.ParseBytes(val)
	if err != nil || size == 0 || size > 1<<30 {
		return 0, d.Errf("max_body: %q is not a size between 1B and 1GiB", val)
	}
	return int64(size), nil
}

// unmarshalOnOff parses upstream_headers on|off.
func unmarshalOnOff(d *caddyfile.Dispenser) (*bool, error) {
	val, err := oneArg(d)
	if err != nil {
		return nil, err
	}
	switch val {
	case "on", "off":
		on := val == "on"
		return &on, nil
	}
	return nil, d.Errf("upstream_headers must be on or off, got %q", val)
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)

// parseDirective is the group_join directive: a handler directive whose
// path matcher, when preview is on, also matches the preview paths, so
// that
//
//	group_join /user/groups/join {
//	    key {env.GROUP_JOIN_KEY}
//	    preview
//	}
//
// serves the join and both preview endpoints from one block, with one
// copy of the keys and the store. A matcher of paths only (inline or
// named) is extended; any other matcher is used as written and must then
// match the preview paths itself.
func parseDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	handler, err := parseCaddyfile(h)
	if err != nil {
		return nil, err
	}
	if p := handler.(*Handler).Preview; p != nil {
		if matcherSet, err = withPreviewPaths(matcherSet, p); err != nil {
			return nil, h.Errf("preview: %v", err)
		}
	}
	return h.NewRoute(matcherSet, handler), nil
}

// withPreviewPaths returns a copy of a matcher set that is only a path
// matcher, with the preview paths added; any other set is returned as it
// is (no matcher at all already matches every path).
func withPreviewPaths(set caddy.ModuleMap, p *PreviewConfig) (caddy.ModuleMap, error) {
	raw, ok := set["path"]
	if !ok || len(set) != 1 {
		return set, nil
	}
	var paths []string
	if err := json.Unmarshal(raw, &paths); err != nil {
		return nil, err
	}
	examine, verify := p.paths()
	paths = append(paths[:len(paths):len(paths)], examine, verify)
	b, err := json.Marshal(paths)
	if err != nil {
		return nil, err
	}
	// A named matcher's set is shared by every directive that uses it.
	out := maps.Clone(set)
	out["path"] = b
	return out, nil
}

// unmarshalPreview parses
//
//	preview [<examine_path> <verify_path>]
//
// (both paths or neither).
func unmarshalPreview(d *caddyfile.Dispenser) (*PreviewConfig, error) {
	args := d.RemainingArgs()
	p := new(PreviewConfig)
	switch len(args) {
	case 0:
	case 2:
		p.ExaminePath, p.VerifyPath = args[0], args[1]
	default:
		return nil, d.Err("preview takes no argument or <examine_path> <verify_path>")
	}
	if err := p.validate(); err != nil {
		return nil, d.Err(err.Error())
	}
	return p, nil
}

// unmarshalStore parses:
//
//	store memory [{
//	    reservation_ttl <duration>
//	}]
//	store redis <url> [{
//	    password <password>
//	    key_prefix <prefix>
//	    timeout <duration>
//	    reservation_ttl <duration>
//	    tls
//	    min_replicas <n> [<timeout>]
//	}]
//	store redis {
//	    sentinels <host:port> [<host:port>…]
//	    master <name>
//	    sentinel_password <password>
//	    db <n>
//	    password <password>
//	    key_prefix <prefix>
//	    timeout <duration>
//	    reservation_ttl <duration>
//	    tls
//	    min_replicas <n> [<timeout>]
//	}
//	store redis {
//	    cluster <host:port> [<host:port>…]
//	    password <password>
//	    key_prefix <prefix>
//	    timeout <duration>
//	    reservation_ttl <duration>
//	    tls
//	    min_replicas <n> [<timeout>]
//	}
//
// Each option may be given once.
func unmarshalStore(d *caddyfile.Dispenser) (*StoreConfig, error) {
	c := new(StoreConfig)
	// A store without any server is reported at its own line.
	file, line := d.File(), d.Line()
	if !d.NextArg() {
		return nil, d.Err("store needs a type: memory or redis <url> (or a block with sentinels or cluster)")
	}
	c.Type = d.Val()
	switch c.Type {
	case "memory":
	case "redis":
		if d.NextArg() {
			c.URL = d.Val()
		}
	default:
		return nil, d.Errf("unknown store type %q (want memory or redis)", c.Type)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("store option %q given twice", opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		nargs := func(min, max int) error {
			if len(args) < min || len(args) > max {
				return d.ArgErr()
			}
			return nil
		}
		var err error
		switch opt {
		case "tls":
			err = nargs(0, 0)
			c.TLS = true
		case "password", "sentinel_password", "key_prefix", "master":
			if err = nargs(1, 1); err == nil {
				*map[string]*string{"password": &c.Password, "sentinel_password": &c.SentinelPassword,
					"key_prefix": &c.KeyPrefix, "master": &c.Master}[opt] = args[0]
			}
		case "sentinels", "cluster":
			if len(args) == 0 {
				return nil, d.Errf("%s needs at least one <host:port>", opt)
			}
			if opt == "sentinels" {
				c.Sentinels = args
			} else {
				c.Cluster = args
			}
		case "db":
			if c.URL != "" {
				return nil, d.Errf("unknown store option %q with a URL: the URL names its database (db is for sentinels)", opt)
			}
			if err = nargs(1, 1); err == nil {
				n, perr := strconv.Atoi(args[0])
				if perr != nil || n < 0 {
					return nil, d.Errf("db: %q is not a database number (0, 1, …)", args[0])
				}
				c.DB = n
			}
		case "timeout", "reservation_ttl":
			if err = nargs(1, 1); err == nil {
				dur, perr := caddy.ParseDuration(args[0])
				if perr != nil || dur <= 0 {
					return nil, d.Errf("%s: %q is not a positive duration", opt, args[0])
				}
				if opt == "timeout" {
					c.Timeout = caddy.Duration(dur)
				} else {
					c.ReservationTTL = caddy.Duration(dur)
				}
			}
		case "min_replicas":
			if err = nargs(1, 2); err == nil {
				n, perr := strconv.Atoi(args[0])
				if perr != nil || n < 1 {
					return nil, d.Errf("min_replicas: %q is not a number of replicas (>= 1)", args[0])
				}
				c.MinReplicas = n
				if len(args) == 2 {
					dur, perr := caddy.ParseDuration(args[1])
					if perr != nil || dur <= 0 {
						return nil, d.Errf("min_replicas: timeout %q is not a positive duration", args[1])
					}
					c.ReplicaTimeout = caddy.Duration(dur)
				}
			}
		default:
			return nil, d.Errf("unknown store option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := c.check(); err != nil {
		if errors.Is(err, errNoRedisServer) {
			return nil, fmt.Errorf("%w, at %s:%d", err, file, line)
		}
		return nil, d.Err(err.Error())
	}
	return c, nil
}
