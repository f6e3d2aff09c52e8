// Package groupjoin is a Caddy HTTP handler that guards Onedata's
// POST /user/groups/join at the edge: it validates the invite macaroon in
// the body and the current user's identity, then hands the request to the
// next handler (normally reverse_proxy to a membership backend), or answers
// a documented JSON error itself.
package groupjoin

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cache"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Defaults for options left unset.
const (
	DefaultMaxBody        = 64 << 10
	DefaultLocationPrefix = "/user/groups/"
)

// Handler implements the group_join HTTP handler. See the README for the
// full contract; the JSON fields mirror the Caddyfile options.
type Handler struct {
	// Root keys. A key without a generation is the default key; keys with a
	// generation verify tmp-<generation> tokens. Secrets may use {env.X}
	// and {file./path} placeholders, resolved once at provision.
	Keys []Key `json:"keys,omitempty"`

	// Where the current user comes from, tried in order. Default:
	// [{"source": "access_token"}].
	Identity []IdentitySource `json:"identity,omitempty"`

	// Service id that access tokens' service caveats must name. Default
	// "ozw-onezone".
	Service string `json:"service,omitempty"`

	// MaxMind mmdb files for geo.* and asn caveats.
	GeoIPDB string `json:"geoip_db,omitempty"`
	ASNDB   string `json:"asn_db,omitempty"`

	// Largest accepted request body in bytes. Default 64 KiB.
	MaxBody int64 `json:"max_body,omitempty"`

	// Prefix of the Location of a successful join. Default "/user/groups/".
	LocationPrefix string `json:"location_prefix,omitempty"`

	// Whether to set X-User-Id, X-Group-Id, X-Invite-Token-Id and
	// X-Invite-Issuer for the backend. Client-sent copies are always
	// removed. Default true.
	UpstreamHeaders *bool `json:"upstream_headers,omitempty"`

	// Where usage limits and revocations of named invites live. Without a
	// store, named invites are limited only by their caveats.
	Store *StoreConfig `json:"store,omitempty"`

	// Onezone's token preview endpoints (examine, verify_invite_token) on
	// this handler; nil: off, every request is a join (preview.go).
	Preview *PreviewConfig `json:"preview,omitempty"`

	verifier   tokens.Verifier
	identity   []IdentitySource
	setHeaders bool
	geoKey     string
	store      store.Store
	storeKey   string
	metrics    *metrics
	logger     *zap.Logger
	access     *cache.Tokens    // access tokens seen
	invites    *cache.Tokens    // invites seen
	clock      func() time.Time // nil: time.Now; tests set it
}

// Key is one configured root key.
type Key struct {
	Generation *uint64 `json:"generation,omitempty"`
	Secret     string  `json:"secret"`
}

// IdentitySource is one way of finding the current user.
type IdentitySource struct {
	// "access_token" or "placeholder".
	Source string `json:"source"`
	// For "placeholder": the placeholder holding the user id, e.g.
	// "{http.auth.user.id}".
	Placeholder string `json:"placeholder,omitempty"`
}

// Identity sources.
const (
	SourceAccessToken = "access_token"
	SourcePlaceholder = "placeholder"
)

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.group_join",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves secrets, builds the keyring, opens the geo databases
// (shared across reloads) and registers metrics.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if h.LocationPrefix == "" {
		h.LocationPrefix = DefaultLocationPrefix
	}
	if h.Service == "" {
		h.Service = tokens.DefaultService
	}
	h.setHeaders = h.UpstreamHeaders == nil || *h.UpstreamHeaders
	h.identity = h.Identity
	if len(h.identity) == 0 {
		h.identity = []IdentitySource{{Source: SourceAccessToken}}
	}

	keys, err := buildKeyring(h.Keys)
	if err != nil {
		return err
	}
	h.verifier = tokens.Verifier{Keys: keys, Service: h.Service}
	// Invites mostly come once, so theirs are cached on a second sight
	// only; a user presents the same access token again and again.
	h.access, h.invites = cache.NewTokens(nil), cache.NewTokens(cache.NewDoorkeeper())

	if h.GeoIPDB != "" || h.ASNDB != "" {
		geo, key, err := loadGeo(h.GeoIPDB, h.ASNDB)
		if err != nil {
			return err
		}
		h.verifier.Geo, h.geoKey = cache.NewGeo(geo), key
	}

	if h.Store != nil {
		h.store, h.storeKey, err = h.Store.open()
		if err != nil {
			return err
		}
	}

	h.metrics, err = loadMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	for _, option := range h.literalSecrets() {
		h.logger.Warn("secret written literally in the config: Caddy's debug log ('adjusted config') and the admin API's GET /config show it; write it as an {env.*} or {file.*} placeholder",
			zap.String("option", option))
	}
	n, lowest := keys.Generations()
	h.logger.Info("group_join provisioned",
		zap.Bool("default_key", keys.HasDefault()),
		zap.Int("generation_keys", n),
		zap.Uint64("lowest_generation", lowest),
		zap.Bool("geoip_db", h.GeoIPDB != ""),
		zap.Bool("asn_db", h.ASNDB != ""),
		zap.String("store", storeType(h.Store)),
	)
	return nil
}

// buildKeyring resolves each secret's placeholders and derives the keys.
// Error messages name the key by position and generation, never its
// value.
func buildKeyring(keys []Key) (*tokens.Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("at least one key is required")
	}
	repl := caddy.NewReplacer()
	var def []byte
	gens := make(map[uint64][]byte)
	for i, k := range keys {
		name := keyName(i, k)
		secret, err := repl.ReplaceOrErr(k.Secret, true, true)
		if err != nil || secret == "" {
			return nil, fmt.Errorf("%s: secret is empty or its placeholder cannot be resolved%s", name, placeholderHint(k.Secret))
		}
		switch {
		case k.Generation == nil && def != nil:
			return nil, fmt.Errorf("%s: default key given twice", name)
		case k.Generation == nil:
			def = []byte(secret)
		case gens[*k.Generation] != nil:
			return nil, fmt.Errorf("%s: generation given twice", name)
		default:
			gens[*k.Generation] = []byte(secret)
		}
	}
	return tokens.NewKeyring(def, gens)
}

// keyName names the i-th key in messages, never by its value.
func keyName(i int, k Key) string {
	name := "key #" + strconv.Itoa(i+1)
	if k.Generation != nil {
		name += " (generation " + strconv.FormatUint(*k.Generation, 10) + ")"
	}
	return name
}

// literalSecrets names the options whose secret is written in the config
// itself rather than as a placeholder resolved at provision. Caddy prints
// the config in its debug log when automatic HTTPS adjusts it, and serves
// it at the admin API's GET /config: such a secret is readable there.
func (h *Handler) literalSecrets() []string {
	var names []string
	for i, k := range h.Keys {
		if isLiteral(k.Secret) {
			names = append(names, keyName(i, k))
		}
	}
	if h.Store != nil {
		names = append(names, h.Store.literalSecrets()...)
	}
	return names
}

// isLiteral reports whether s is a non-empty value with no placeholder
// that the provision-time replacer would resolve (a Caddyfile's {$X} is
// resolved by the adapter already, so it is literal here).
func isLiteral(s string) bool {
	if s == "" {
		return false
	}
	out, err := caddy.NewReplacer().ReplaceOrErr(s, true, true)
	return err == nil && out == s
}

// placeholderHint names the placeholder of a secret that is exactly one
// {env.X} or {file.X} placeholder; a literal secret is never echoed.
func placeholderHint(s string) string {
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && strings.Count(s, "{") == 1 &&
		(strings.HasPrefix(s, "{env.") || strings.HasPrefix(s, "{file.")) {
		return " (" + s + ")"
	}
	return ""
}

// Validate checks the parts of the config that Provision does not.
func (h *Handler) Validate() error {
	if h.MaxBody < 0 {
		return errors.New("max_body must be positive")
	}
	if !strings.HasPrefix(h.LocationPrefix, "/") && !strings.Contains(h.LocationPrefix, "://") {
		return fmt.Errorf("location_prefix %q must be a path or an absolute URL", h.LocationPrefix)
	}
	for i, s := range h.identity {
		switch s.Source {
		case SourceAccessToken:
		case SourcePlaceholder:
			if !strings.HasPrefix(s.Placeholder, "{") || !strings.HasSuffix(s.Placeholder, "}") {
				return fmt.Errorf("identity #%d: %q is not a placeholder", i+1, s.Placeholder)
			}
		default:
			return fmt.Errorf("identity #%d: unknown source %q (want access_token or placeholder)", i+1, s.Source)
		}
	}
	if h.Preview != nil {
		if err := h.Preview.validate(); err != nil {
			return err
		}
	}
	if h.Service != "" && !strings.Contains(h.Service, "-") {
		return fmt.Errorf("service %q must look like ozw-<id>", h.Service)
	}
	return nil
}

// Cleanup releases what this instance holds in the shared pools.
func (h *Handler) Cleanup() error {
	var errs []error
	if h.metrics != nil {
		_, err := metricsPool.Delete(metricsKey)
		errs = append(errs, err)
	}
	if h.geoKey != "" {
		_, err := geoPool.Delete(h.geoKey)
		errs = append(errs, err)
	}
	if h.storeKey != "" {
		_, err := storePool.Delete(h.storeKey)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Interface guards.
var (
	_ caddy.Module                = (*Handler)(nil)
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

func storeType(c *StoreConfig) string {
	if c == nil {
		return "none"
	}
	return c.Type
}
