package groupjoin

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("group_join", parseCaddyfile)
	// Before reverse_proxy means after basic_auth, forward_auth and
	// respond, so identity placeholders are set when group_join runs.
	httpcaddyfile.RegisterDirectiveOrder("group_join", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterGlobalOption("group_join", parseGlobalOption)
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	group_join [<matcher>] [<invite type>|examine|verify] [{
//	    entity <placeholder>                  # who joins, where not the caller; default {http.request.uri.path.1}
//	    location_prefix <prefix>              # default Onezone's, e.g. /groups/<id>/parents/
//	    ...                                   # the shared options below, for a handler that does not use the global group_join option
//	}]
//
// The invite type names the join served (default userJoinGroup; the
// twelve are in docs/contract.md); examine and verify serve Onezone's
// token preview endpoints. Caddy's matcher decides which requests the
// handler gets, e.g.
//
//	group_join /user/groups/join
//	group_join /groups/*/parents/join groupJoinGroup
//	group_join /tokens/verify_invite_token verify
//
// The shared options are written once, in the global group_join option
// (see parseGlobalOption); a handler block that has keys carries its own
// instead.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Serve = d.Val()
		if err := checkServe(h.Serve); err != nil {
			return d.Err(err.Error())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	seen := make(map[string]int) // single-valued option → line of its first use
	for d.NextBlock(0) {
		opt := d.Val()
		if err := checkOnce(d, seen, opt); err != nil {
			return err
		}
		var err error
		switch opt {
		case "entity":
			h.Entity, err = oneArg(d)
		case "location_prefix":
			h.LocationPrefix, err = oneArg(d)
		case "preview":
			return d.Err(previewMovedCaddyfile)
		default:
			err = h.Shared.unmarshalOption(d, opt, "group_join")
		}
		if err != nil {
			return err
		}
	}
	if h.Shared.set() && len(h.Keys) == 0 {
		return d.Err("shared options without keys: write key, identity, store and the others once in the global group_join option, or give this handler its keys too")
	}
	return nil
}

// previewMovedCaddyfile answers a Caddyfile that still has the preview
// option inside a group_join block.
const previewMovedCaddyfile = `the preview option is gone: move key, identity, store and the other shared options into a global option block ` +
	`"group_join { … }", then write one handler per endpoint in the site: "group_join /user/groups/join", ` +
	`"group_join /tokens/examine examine" and "group_join /tokens/verify_invite_token verify" (README: "The preview endpoints")`

// parseGlobalOption parses the global group_join option, the shared
// configuration of every group_join handler without keys of its own:
//
//	{
//	    group_join {
//	        key [<generation>] <secret>           # repeatable; at least one
//	        identity access_token                 # repeatable; order = try order
//	        identity placeholder <placeholder>
//	        service <ozw-id>                      # default ozw-onezone
//	        geoip_db <path.mmdb>                  # country lookups (geo.*)
//	        asn_db <path.mmdb>                    # ASN lookups
//	        max_body <size>                       # default 64KiB
//	        upstream_headers on|off               # default on
//	        error_model documented|onezone        # default documented
//	        store memory [{                       # one instance
//	            reservation_ttl <duration>        # default 1m
//	        }]
//	        store redis <redis-url> [{            # a fleet sharing one Redis primary
//	            password <password>
//	            key_prefix <prefix>               # default groupjoin:
//	            timeout <duration>                # default 1s
//	            reservation_ttl <duration>        # default 1m
//	            tls
//	            min_replicas <n> [<timeout>]      # default off; timeout 500ms
//	        }]
//	        store redis {                         # a fleet on Redis Sentinel
//	            sentinels <host:port>...
//	            master <name>
//	            sentinel_password <password>
//	            db <n>                            # default 0
//	            ...                               # the options above
//	        }
//	        store redis {                         # a fleet on Redis Cluster
//	            cluster <host:port>...            # seed nodes
//	            ...                               # the options above
//	        }
//	    }
//	}
//
// key and identity may be repeated; every other option may be given once.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("group_join: global option given twice")
	}
	app := new(App)
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := make(map[string]int)
	for d.NextBlock(0) {
		opt := d.Val()
		if err := checkOnce(d, seen, opt); err != nil {
			return nil, err
		}
		if err := app.Shared.unmarshalOption(d, opt, "global group_join"); err != nil {
			return nil, err
		}
	}
	if len(app.Keys) == 0 {
		return nil, d.Err("global group_join option needs at least one key")
	}
	return httpcaddyfile.App{Name: "group_join", Value: caddyconfig.JSON(app, nil)}, nil
}

// checkOnce refuses a single-valued option given twice.
func checkOnce(d *caddyfile.Dispenser, seen map[string]int, opt string) error {
	if opt == "key" || opt == "identity" {
		return nil
	}
	if line, ok := seen[opt]; ok {
		return d.Errf("%s given twice (first at line %d)", opt, line)
	}
	seen[opt] = d.Line()
	return nil
}

// unmarshalOption parses one of the shared options into s; where names
// the block in messages.
func (s *Shared) unmarshalOption(d *caddyfile.Dispenser, opt, where string) error {
	var err error
	switch opt {
	case "key":
		err = s.unmarshalKey(d)
	case "identity":
		err = s.unmarshalIdentity(d)
	case "service":
		s.Service, err = oneArg(d)
	case "geoip_db":
		s.GeoIPDB, err = oneArg(d)
	case "asn_db":
		s.ASNDB, err = oneArg(d)
	case "max_body":
		s.MaxBody, err = unmarshalSize(d)
	case "upstream_headers":
		s.UpstreamHeaders, err = unmarshalOnOff(d)
	case "store":
		s.Store, err = unmarshalStore(d)
	case "error_model":
		if s.ErrorModel, err = oneArg(d); err == nil && s.ErrorModel != ModelDocumented && s.ErrorModel != ModelOnezone {
			err = d.Errf("error_model must be %s or %s, got %q", ModelDocumented, ModelOnezone, s.ErrorModel)
		}
	case "entity", "location_prefix":
		err = d.Errf("%s is an option of each group_join handler, not of the %s option", opt, where)
	default:
		err = d.Errf("unknown %s option %q", where, opt)
	}
	return err
}

// unmarshalKey parses key [<generation>] <secret>.
func (s *Shared) unmarshalKey(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	switch len(args) {
	case 1:
		s.Keys = append(s.Keys, Key{Secret: args[0]})
	case 2:
		gen, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil {
			return d.Errf("key generation must be a whole number, got %q", args[0])
		}
		s.Keys = append(s.Keys, Key{Generation: &gen, Secret: args[1]})
	default:
		return d.Err("key takes [<generation>] <secret>")
	}
	return nil
}

// unmarshalIdentity parses identity access_token|placeholder <placeholder>.
func (s *Shared) unmarshalIdentity(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	switch src := d.Val(); src {
	case SourceAccessToken:
		s.Identity = append(s.Identity, IdentitySource{Source: src})
	case SourcePlaceholder:
		if !d.NextArg() {
			return d.Err("identity placeholder needs a placeholder, e.g. {http.auth.user.id}")
		}
		s.Identity = append(s.Identity, IdentitySource{Source: src, Placeholder: d.Val()})
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
