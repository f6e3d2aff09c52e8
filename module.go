// Package groupjoin is a Caddy HTTP handler that guards Onezone's invite
// joins at the edge (POST /user/groups/join, /groups/{id}/parents/join and
// the ten others): it validates the invite macaroon in the body and the
// current user's identity, then hands the request to the next handler
// (normally reverse_proxy to a membership backend), or answers a
// documented JSON error itself. The group_join app holds the keys, store
// and limits that every route shares.
package groupjoin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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

// Handler implements the group_join HTTP handler: one of Onezone's invite
// joins (by default POST /user/groups/join), or one of its token preview
// endpoints. Caddy's request matchers decide which requests it gets. Its
// keys, identity sources, store and limits are the group_join app's
// (Shared), unless it carries keys of its own. See the README for the
// contract; the JSON fields mirror the Caddyfile options.
type Handler struct {
	// What this handler serves: the invite type of a join
	// ("userJoinGroup", the default; "groupJoinGroup", "userJoinSpace", …
	// see docs/contract.md), or "examine" or "verify" for Onezone's
	// token preview endpoints (preview.go).
	Serve string `json:"serve,omitempty"`

	// Options of a handler that does not use the group_join app; a handler
	// with none of them set uses the app's.
	Shared

	// Placeholder holding the id of the joining entity on a join where a
	// group, space or harvester joins. Default: the path's second segment,
	// as in /groups/{id}/parents/join ({http.request.uri.path.1}).
	Entity string `json:"entity,omitempty"`

	// Prefix of the Location of a successful join, before the joined
	// entity's id; it may hold placeholders. Default: Onezone's, e.g.
	// "/user/groups/" or "/groups/<id>/parents/".
	LocationPrefix string `json:"location_prefix,omitempty"`

	// Preview turned the preview endpoints on inside a join handler in
	// earlier releases. Set, provisioning fails and says what to write
	// instead.
	Preview json.RawMessage `json:"preview,omitempty"`

	*sharedState                // the app's, or this handler's own (own)
	own          bool           // this handler provisioned its sharedState
	route        *joinRoute     // the join served; nil for examine and verify
	counts       *routeCounters // this route's requests counters
	logger       *zap.Logger
	clock        func() time.Time // nil: time.Now; tests set it

	wrongType    string // description of an invite of another type
	targetField  string // log field of the joined entity's id, e.g. "group_id"
	entityField  string // log field of the joining entity's id, "" when the caller joins
	locBefore    string // Location: locBefore + joiner id + locAfter + target id
	locAfter     string
	locTemplated bool // LocationPrefix holds placeholders
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

// errPreviewMoved answers a config that still has the preview option.
var errPreviewMoved = errors.New(`the preview option is gone: the preview endpoints are handlers of their own, each on its own route, ` +
	`sharing keys and store through the group_join app. Caddyfile: move key, identity, store, … into a global option block "group_join { … }", ` +
	`then write "group_join /user/groups/join", "group_join /tokens/examine examine" and "group_join /tokens/verify_invite_token verify" in the site; ` +
	`JSON: "apps": {"group_join": {"keys": …}} and handlers {"handler": "group_join", "serve": "examine"} and {"handler": "group_join", "serve": "verify"} on routes matching those paths`)

// Provision takes the group_join app's shared state, or builds this
// handler's own when it has keys, and works out the route it serves.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Preview != nil {
		return errPreviewMoved
	}
	if err := h.provisionRoute(); err != nil {
		return err
	}
	switch {
	case len(h.Keys) > 0:
		if err := h.Shared.validate(); err != nil {
			return err
		}
		ss, err := newSharedState(ctx, h.Shared, h.logger)
		if err != nil {
			return err
		}
		h.attach(ss, true)
	case h.Shared.set():
		return errors.New("keys, identity, store and the other shared options are given here without keys: " +
			"write them all in the global group_join option (the group_join app) so every route shares them, or give this handler its keys too")
	default:
		app, err := ctx.AppIfConfigured("group_join")
		switch {
		case errors.Is(err, caddy.ErrNotConfigured):
			return errors.New(`no keys: configure them once in the global group_join option (JSON: the "group_join" app), or in this handler`)
		case err != nil:
			return err
		}
		h.attach(app.(*App).state, false)
	}
	return nil
}

// attach makes ss the shared state h serves from; own says h built it.
// A verify handler with keys of its own shares them with no join handler:
// it verifies the invites of every join.
func (h *Handler) attach(ss *sharedState, own bool) {
	h.sharedState, h.own = ss, own
	label := h.Serve
	switch {
	case h.route != nil:
		ss.serve(h.route.invite)
		label = h.route.invite.Name
	case own && h.Serve == ServeVerify:
		for _, r := range joinRoutes {
			ss.serve(r.invite)
		}
	}
	h.counts = ss.metrics.forRoute(label)
}

// provisionRoute resolves Serve and the route's defaults.
func (h *Handler) provisionRoute() error {
	if err := checkServe(h.Serve); err != nil {
		return err
	}
	if h.Serve == ServeExamine || h.Serve == ServeVerify {
		if h.Entity != "" || h.LocationPrefix != "" {
			return fmt.Errorf("serve %s answers itself: entity and location_prefix do not apply", h.Serve)
		}
		return nil
	}
	name := h.Serve
	if name == "" {
		name = tokens.UserJoinGroup.Name
	}
	h.route, _ = routeByName(name)
	t := h.route.invite
	h.targetField = t.Target.String() + "_id"
	h.wrongType = wrongTypeDesc(t)
	if h.route.byUser() {
		if h.Entity != "" {
			return fmt.Errorf("entity: on %s the caller joins; entity applies where a group, space or harvester joins", t.Name)
		}
	} else {
		h.entityField = "joining_" + t.Joiner.String() + "_id"
	}
	switch {
	case h.LocationPrefix == "":
		h.locBefore, h.locAfter = h.route.locationParts()
	case !strings.HasPrefix(h.LocationPrefix, "/") && !strings.Contains(h.LocationPrefix, "://"):
		return fmt.Errorf("location_prefix %q must be a path or an absolute URL", h.LocationPrefix)
	default:
		h.locBefore, h.locTemplated = h.LocationPrefix, strings.Contains(h.LocationPrefix, "{")
	}
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
func (s *Shared) literalSecrets() []string {
	var names []string
	for i, k := range s.Keys {
		if isLiteral(k.Secret) {
			names = append(names, keyName(i, k))
		}
	}
	if s.Store != nil {
		names = append(names, s.Store.literalSecrets()...)
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
	if h.sharedState == nil {
		return errors.New("not provisioned")
	}
	return nil
}

// Cleanup releases what this handler holds in the shared pools: nothing
// when it uses the app's.
func (h *Handler) Cleanup() error {
	if !h.own || h.sharedState == nil {
		return nil
	}
	return h.sharedState.release()
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
