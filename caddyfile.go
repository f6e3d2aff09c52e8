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
//	    store memory                          # one instance
//	    store redis <redis-url> {             # a fleet of instances
//	        password <password>
//	        key_prefix <prefix>               # default groupjoin:
//	        timeout <duration>                # default 1s
//	        reservation_ttl <duration>        # default 1m
//	        tls
//	    }
//	    preview [<examine_path> <verify_path>] # default /tokens/examine /tokens/verify_invite_token
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "key":
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
		case "identity":
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
		case "service", "geoip_db", "asn_db", "location_prefix":
			opt := d.Val()
			var val string
			if !d.AllArgs(&val) {
				return d.ArgErr()
			}
			switch opt {
			case "service":
				h.Service = val
			case "geoip_db":
				h.GeoIPDB = val
			case "asn_db":
				h.ASNDB = val
			case "location_prefix":
				h.LocationPrefix = val
			}
		case "max_body":
			var val string
			if !d.AllArgs(&val) {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(val)
			if err != nil || size == 0 || size > 1<<30 {
				return d.Errf("max_body: %q is not a size between 1B and 1GiB", val)
			}
			h.MaxBody = int64(size)
		case "store":
			c, err := unmarshalStore(d)
			if err != nil {
				return err
			}
			h.Store = c
		case "preview":
			p, err := unmarshalPreview(d)
			if err != nil {
				return err
			}
			h.Preview = p
		case "upstream_headers":
			var val string
			if !d.AllArgs(&val) {
				return d.ArgErr()
			}
			switch val {
			case "on", "off":
				on := val == "on"
				h.UpstreamHeaders = &on
			default:
				return d.Errf("upstream_headers must be on or off, got %q", val)
			}
		default:
			return d.Errf("unknown group_join option %q", d.Val())
		}
	}
	if len(h.Keys) == 0 {
		return d.Err("group_join needs at least one key")
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
