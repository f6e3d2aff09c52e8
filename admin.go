package groupjoin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-groupjoin/caddy-groupjoin/store"
	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the invite store of the running group_join handlers on
// Caddy's admin endpoint (Caddy loads every registered admin.api.* module):
//
//	GET    /group-join/stores                      list the configured stores
//	POST   /group-join/invites                     register {"id", "uses", "ttl"} → 201
//	GET    /group-join/invites/<id>                state of an invite
//	POST   /group-join/invites/<id>/revoke         revoke (idempotent) → 200
//	DELETE /group-join/invites/<id>                the same
//
// When the loaded handlers use more than one store, every invite route
// needs ?store=<name> (or the 1-based position in GET /group-join/stores).
// Errors are Caddy's admin errors: {"error": "<message>"}.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.group_join",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the routes under /group-join/.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: adminBase, Handler: caddy.AdminHandlerFunc(a.serve)}}
}

const (
	adminBase = "/group-join/"
	// adminMaxBody bounds a registration request.
	adminMaxBody = 64 << 10
	// adminTimeout bounds one store operation.
	adminTimeout = 5 * time.Second
)

// registration is the body of POST /group-join/invites.
type registration struct {
	// ID is the token id (the last segment of the token's identifier).
	ID string `json:"id"`
	// Uses is a number >= 1 or "unlimited"; default 1.
	Uses json.RawMessage `json:"uses,omitempty"`
	// TTL is how long the record lives, e.g. "24h" or "7d" — normally
	// until the token's time caveat; "" or "0" keeps it forever.
	TTL string `json:"ttl,omitempty"`
}

// inviteState is the JSON form of an invite's state.
type inviteState struct {
	ID    string `json:"id"`
	Store string `json:"store"`
	// Limit and Remaining are numbers, or "unlimited".
	Limit     any        `json:"limit"`
	Used      int64      `json:"used"`
	Reserved  int64      `json:"reserved"`
	Remaining any        `json:"remaining"`
	Revoked   bool       `json:"revoked"`
	Created   *time.Time `json:"created,omitempty"`
	Expires   *time.Time `json:"expires"` // null: never
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, adminBase)
	parts := strings.Split(rest, "/")
	switch {
	case rest == "stores":
		if err := allowMethods(r, http.MethodGet); err != nil {
			return err
		}
		return a.listStores(w)
	case rest == "invites":
		if err := allowMethods(r, http.MethodPost); err != nil {
			return err
		}
		return a.register(w, r)
	case len(parts) == 2 && parts[0] == "invites":
		if err := allowMethods(r, http.MethodGet, http.MethodDelete); err != nil {
			return err
		}
		return a.invite(w, r, parts[1], r.Method == http.MethodDelete)
	case len(parts) == 3 && parts[0] == "invites" && parts[2] == "revoke":
		if err := allowMethods(r, http.MethodPost); err != nil {
			return err
		}
		return a.invite(w, r, parts[1], true)
	}
	return apiErr(http.StatusNotFound, "no such group_join admin route: %s (see GET /group-join/stores, /group-join/invites[/<id>[/revoke]])", r.URL.Path)
}

func (a *adminAPI) listStores(w http.ResponseWriter) error {
	type entry struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	stores := activeStores()
	out := struct {
		Stores []entry `json:"stores"`
	}{Stores: []entry{}}
	for _, name := range sortedNames(stores) {
		typ := "redis"
		switch {
		case strings.HasPrefix(name, "memory"):
			typ = "memory"
		case strings.HasPrefix(name, "sentinel://"):
			typ = "redis-sentinel"
		case strings.HasPrefix(name, "cluster://"):
			typ = "redis-cluster"
		}
		out.Stores = append(out.Stores, entry{name, typ})
	}
	return writeAdminJSON(w, http.StatusOK, out)
}

func (a *adminAPI) register(w http.ResponseWriter, r *http.Request) error {
	var req registration
	dec := json.NewDecoder(io.LimitReader(r.Body, adminMaxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apiErr(http.StatusBadRequest, "request body must be a JSON object {\"id\": \"<token id>\", \"uses\": N|\"unlimited\", \"ttl\": \"24h\"}: %v", err)
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, "request body must hold one JSON object")
	}
	if err := checkTokenID(req.ID); err != nil {
		return err
	}
	limit, err := parseUses(req.Uses)
	if err != nil {
		return err
	}
	ttl, err := parseAdminTTL(req.TTL)
	if err != nil {
		return err
	}
	name, st, err := pickStore(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	if err := st.Register(ctx, req.ID, limit, ttl); err != nil {
		return storeErr(err, req.ID)
	}
	inv, err := st.Get(ctx, req.ID)
	if err != nil {
		// Registered, but the state cannot be read back (e.g. a 1ns ttl).
		inv = store.Invite{ID: req.ID, Limit: limit}
	}
	return writeAdminJSON(w, http.StatusCreated, stateOf(name, inv))
}

// invite answers an invite's state, revoking it first when asked.
func (a *adminAPI) invite(w http.ResponseWriter, r *http.Request, id string, revoke bool) error {
	if err := checkTokenID(id); err != nil {
		return err
	}
	name, st, err := pickStore(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	if revoke {
		if err := st.Revoke(ctx, id); err != nil {
			return storeErr(err, id)
		}
	}
	inv, err := st.Get(ctx, id)
	switch {
	case err != nil && revoke:
		// Revoked, but the state cannot be read back.
		inv = store.Invite{ID: id, Revoked: true}
	case err != nil:
		return storeErr(err, id)
	}
	return writeAdminJSON(w, http.StatusOK, stateOf(name, inv))
}

// pickStore selects the store a request works on: the only one, or the
// one named (or numbered) by ?store=.
func pickStore(r *http.Request) (string, store.Store, error) {
	stores := activeStores()
	if len(stores) == 0 {
		return "", nil, apiErr(http.StatusNotFound, "no group_join store configured (add `store memory` or `store redis <url>` to a group_join handler)")
	}
	names := sortedNames(stores)
	want := r.URL.Query().Get("store")
	if want == "" {
		if len(names) == 1 {
			return names[0], stores[names[0]], nil
		}
		return "", nil, apiErr(http.StatusBadRequest, "%d group_join stores are configured; choose one with ?store=<name or number> (GET /group-join/stores lists them)", len(names))
	}
	if st, ok := stores[want]; ok {
		return want, st, nil
	}
	if n, err := strconv.Atoi(want); err == nil && n >= 1 && n <= len(names) {
		return names[n-1], stores[names[n-1]], nil
	}
	return "", nil, apiErr(http.StatusNotFound, "no group_join store %q is configured (GET /group-join/stores lists them)", want)
}

func sortedNames(stores map[string]store.Store) []string {
	names := make([]string, 0, len(stores))
	for n := range stores {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func checkTokenID(id string) error {
	if !tokens.ValidID(id) {
		return apiErr(http.StatusBadRequest, "invalid token id: want 1 to 256 characters of A-Z a-z 0-9 . _ ~ @ - (the last segment of the token's identifier)")
	}
	return nil
}

// parseUses reads "uses": absent means 1.
func parseUses(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 1, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "unlimited" {
			return store.Unlimited, nil
		}
		raw = []byte(s) // "5" is accepted as well
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 1 {
		return 0, apiErr(http.StatusBadRequest, "uses must be a whole number >= 1 or \"unlimited\", got %s", string(raw))
	}
	return n, nil
}

// parseAdminTTL reads "ttl": a Caddy duration ("90m", "24h", "7d"); empty
// or "0" means no expiry.
func parseAdminTTL(s string) (time.Duration, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	d, err := caddy.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, apiErr(http.StatusBadRequest, "ttl must be a positive duration such as \"24h\" or \"7d\" (or \"0\" for none), got %q", s)
	}
	return d, nil
}

// storeErr maps a store error to an admin answer. Store errors never carry
// credentials.
func storeErr(err error, id string) error {
	switch {
	case errors.Is(err, store.ErrExists):
		return apiErr(http.StatusConflict, "invite %s is already registered (a revoked invite stays revoked)", id)
	case errors.Is(err, store.ErrUnknown):
		return apiErr(http.StatusNotFound, "invite %s is not registered", id)
	case errors.Is(err, store.ErrInvalid):
		return apiErr(http.StatusBadRequest, "%v", err)
	case errors.Is(err, store.ErrUnavailable):
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("%w: %w", store.ErrUnavailable, err)}
	}
	return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("invite store: %w", err)}
}

func stateOf(storeName string, inv store.Invite) inviteState {
	s := inviteState{ID: inv.ID, Store: storeName, Used: inv.Used, Reserved: inv.Reserved, Revoked: inv.Revoked}
	if inv.Limit == store.Unlimited {
		s.Limit, s.Remaining = "unlimited", "unlimited"
	} else {
		s.Limit = inv.Limit
		s.Remaining = max(inv.Limit-inv.Used-inv.Reserved, 0)
	}
	if inv.Revoked {
		s.Remaining = 0
	}
	if !inv.Created.IsZero() {
		t := inv.Created.UTC()
		s.Created = &t
	}
	if !inv.Expires.IsZero() {
		t := inv.Expires.UTC()
		s.Expires = &t
	}
	return s
}

func allowMethods(r *http.Request, methods ...string) error {
	if slices.Contains(methods, r.Method) {
		return nil
	}
	return apiErr(http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(methods, ", "))
}

func apiErr(status int, format string, a ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, a...)}
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return nil
}

// Interface guards.
var (
	_ caddy.Module      = (*adminAPI)(nil)
	_ caddy.AdminRouter = (*adminAPI)(nil)
)
