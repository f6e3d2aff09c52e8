package groupjoin

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-groupjoin/caddy-groupjoin/internal/cache"
	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

func init() {
	caddy.RegisterModule(new(App))
}

// Shared is what every route of one edge shares: the keys, where the
// caller comes from, the store, the geo databases and the limits. It is
// written once, in the group_join app (the Caddyfile's global group_join
// option), and every group_join handler without keys of its own uses it.
// A handler that has keys carries a Shared of its own instead.
type Shared struct {
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

	// Whether to set the X-User-Id, X-Join-* and X-Invite-* headers for
	// the backend. Client-sent copies are always removed. Default true.
	UpstreamHeaders *bool `json:"upstream_headers,omitempty"`

	// Where usage limits and revocations of named invites live. Without a
	// store, named invites are limited only by their caveats.
	Store *StoreConfig `json:"store,omitempty"`

	// How error answers are written: "documented" (the default, the API
	// page's {"error", "error_description"}) or "onezone" (Onezone's
	// current {"error": {"id", "description", "details"}}).
	ErrorModel string `json:"error_model,omitempty"`
}

// set reports whether any option of s is given.
func (s *Shared) set() bool {
	return len(s.Keys) > 0 || len(s.Identity) > 0 || s.Service != "" || s.GeoIPDB != "" || s.ASNDB != "" ||
		s.MaxBody != 0 || s.UpstreamHeaders != nil || s.Store != nil || s.ErrorModel != ""
}

// validate checks what provisioning does not.
func (s *Shared) validate() error {
	if s.MaxBody < 0 {
		return errors.New("max_body must be positive")
	}
	for i, src := range s.Identity {
		switch src.Source {
		case SourceAccessToken:
		case SourcePlaceholder:
			if len(src.Placeholder) < 2 || src.Placeholder[0] != '{' || src.Placeholder[len(src.Placeholder)-1] != '}' {
				return fmt.Errorf("identity #%d: %q is not a placeholder", i+1, src.Placeholder)
			}
		default:
			return fmt.Errorf("identity #%d: unknown source %q (want access_token or placeholder)", i+1, src.Source)
		}
	}
	switch s.ErrorModel {
	case "", ModelDocumented, ModelOnezone:
	default:
		return fmt.Errorf("error_model %q: want %s or %s", s.ErrorModel, ModelDocumented, ModelOnezone)
	}
	if s.Service != "" && !strings.Contains(s.Service, "-") {
		return fmt.Errorf("service %q must look like ozw-<id>", s.Service)
	}
	return nil
}

// App is the group_join app: the Shared configuration of every group_join
// handler that has no keys of its own, provisioned once per config load.
// Its handlers share one keyring, one set of token caches, one store and
// one set of geo readers: an invite cached on one route is cached on all.
type App struct {
	Shared
	state *sharedState
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "group_join",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision builds the shared state.
func (a *App) Provision(ctx caddy.Context) error {
	if err := a.validate(); err != nil {
		return fmt.Errorf("group_join app: %w", err)
	}
	e, err := newSharedState(ctx, a.Shared, ctx.Logger())
	if err != nil {
		return fmt.Errorf("group_join app: %w", err)
	}
	a.state = e
	return nil
}

// Start and Stop have nothing to do: the handlers serve.
func (*App) Start() error { return nil }
func (*App) Stop() error  { return nil }

// Cleanup releases what the app holds in the shared pools.
func (a *App) Cleanup() error {
	if a.state == nil {
		return nil
	}
	return a.state.release()
}

// sharedState is a provisioned Shared: what the handlers that use it read on
// every request.
type sharedState struct {
	verifier   tokens.Verifier
	identity   []IdentitySource
	setHeaders bool
	onezone    bool // error answers in Onezone's model
	maxBody    int64
	store      store.Store
	metrics    *metrics
	access     *cache.Tokens // access tokens seen
	invites    *cache.Tokens // invites seen
	geoKey     string        // geoPool reference, if any
	storeKey   string        // storePool reference, if any

	// The invite types the join handlers on this edge serve, for
	// verify_invite_token; filled while the config provisions, read once
	// it serves.
	mu     sync.Mutex
	served []tokens.InviteType

	releaseOnce sync.Once
	releaseErr  error
}

// newSharedState resolves secrets, builds the keyring, opens the geo databases
// and the store (shared across reloads) and registers metrics.
func newSharedState(ctx caddy.Context, s Shared, logger *zap.Logger) (*sharedState, error) {
	e := &sharedState{maxBody: s.MaxBody, identity: s.Identity, setHeaders: s.UpstreamHeaders == nil || *s.UpstreamHeaders,
		onezone: s.ErrorModel == ModelOnezone}
	done := false
	defer func() {
		if !done {
			_ = e.release()
		}
	}()
	if e.maxBody == 0 {
		e.maxBody = DefaultMaxBody
	}
	if len(e.identity) == 0 {
		e.identity = []IdentitySource{{Source: SourceAccessToken}}
	}
	service := s.Service
	if service == "" {
		service = tokens.DefaultService
	}
	keys, err := buildKeyring(s.Keys)
	if err != nil {
		return nil, err
	}
	e.verifier = tokens.Verifier{Keys: keys, Service: service}
	// Invites mostly come once, so theirs are cached on a second sight
	// only; a user presents the same access token again and again.
	e.access, e.invites = cache.NewTokens(nil), cache.NewTokens(cache.NewDoorkeeper())

	if s.GeoIPDB != "" || s.ASNDB != "" {
		geo, key, err := loadGeo(s.GeoIPDB, s.ASNDB)
		if err != nil {
			return nil, err
		}
		e.verifier.Geo, e.geoKey = cache.NewGeo(geo), key
	}
	if s.Store != nil {
		if e.store, e.storeKey, err = s.Store.open(); err != nil {
			return nil, err
		}
	}
	if e.metrics, err = loadMetrics(ctx.GetMetricsRegistry()); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	for _, option := range s.literalSecrets() {
		logger.Warn("secret written literally in the config: Caddy's debug log ('adjusted config') and the admin API's GET /config show it; write it as an {env.*} or {file.*} placeholder",
			zap.String("option", option))
	}
	n, lowest := keys.Generations()
	logger.Info("group_join provisioned",
		zap.Bool("default_key", keys.HasDefault()),
		zap.Int("generation_keys", n),
		zap.Uint64("lowest_generation", lowest),
		zap.Bool("geoip_db", s.GeoIPDB != ""),
		zap.Bool("asn_db", s.ASNDB != ""),
		zap.String("store", storeType(s.Store)),
		zap.Bool("onezone_errors", e.onezone),
	)
	done = true
	return e, nil
}

// serve records that a join handler on this edge serves t.
func (e *sharedState) serve(t tokens.InviteType) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.served {
		if s.Code == t.Code {
			return
		}
	}
	e.served = append(e.served, t)
}

// servedTypes returns the invite types the join handlers on this edge
// serve.
func (e *sharedState) servedTypes() []tokens.InviteType {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.served
}

// release gives back the state's references in the shared pools, once.
// Its fields stay as they are: requests still in flight on a config being
// replaced keep using them.
func (e *sharedState) release() error {
	e.releaseOnce.Do(func() {
		var errs []error
		if e.metrics != nil {
			_, err := metricsPool.Delete(metricsKey)
			errs = append(errs, err)
		}
		if e.geoKey != "" {
			_, err := geoPool.Delete(e.geoKey)
			errs = append(errs, err)
		}
		if e.storeKey != "" {
			_, err := storePool.Delete(e.storeKey)
			errs = append(errs, err)
		}
		e.releaseErr = errors.Join(errs...)
	})
	return e.releaseErr
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
