package groupjoin

import (
	"strconv"

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
