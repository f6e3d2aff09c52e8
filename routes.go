package groupjoin

import (
	"fmt"
	"strings"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// joinRoute is one of Onezone's invite joins (oz-worker
// src/http/rest/routes/*_routes.erl and the logic plugins' create and
// authorize clauses for aspect join): the invite type it consumes, its
// path, where the joined entity is afterwards (Location), and what only
// the backend can check. In paths, {id} is the joining entity.
type joinRoute struct {
	invite    tokens.InviteType
	path      string // Onezone's path
	location  string // Location of the joined entity, less its id
	privilege string // what the caller must hold in {id}; "" when the caller joins
}

// joinRoutes are the twelve joins, one per invite type that a join
// consumes (supportSpace and registerOneprovider take other bodies).
var joinRoutes = func() []joinRoute {
	rows := []struct{ name, path, location, privilege string }{
		{"userJoinGroup", "/user/groups/join", "/user/groups/", ""},
		{"groupJoinGroup", "/groups/{id}/parents/join", "/groups/{id}/parents/", "group_add_parent"},
		{"userJoinSpace", "/user/spaces/join", "/user/spaces/", ""},
		{"groupJoinSpace", "/groups/{id}/spaces/join", "/groups/{id}/spaces/", "group_add_space"},
		{"harvesterJoinSpace", "/harvesters/{id}/spaces/join", "/harvesters/{id}/spaces/", "harvester_add_space"},
		{"userJoinHarvester", "/user/harvesters/join", "/user/harvesters/", ""},
		{"groupJoinHarvester", "/groups/{id}/harvesters/join", "/groups/{id}/harvesters/", "group_add_harvester"},
		{"spaceJoinHarvester", "/spaces/{id}/harvesters/join", "/spaces/{id}/harvesters/", "space_add_harvester"},
		{"userJoinCluster", "/user/clusters/join", "/user/clusters/", ""},
		{"groupJoinCluster", "/groups/{id}/clusters/join", "/groups/{id}/clusters/", "group_add_cluster"},
		{"userJoinAtmInventory", "/user/atm_inventories/join", "/user/atm_inventories/", ""},
		{"groupJoinAtmInventory", "/groups/{id}/atm_inventories/join", "/groups/{id}/atm_inventories/", "group_add_atm_inventory"},
	}
	out := make([]joinRoute, len(rows))
	for i, r := range rows {
		t, ok := tokens.InviteTypeByName(r.name)
		if !ok || !t.Join {
			panic("joinRoutes: " + r.name + " is no join invite type")
		}
		out[i] = joinRoute{t, r.path, r.location, r.privilege}
	}
	return out
}()

// What a handler serves besides a join.
const (
	ServeExamine = "examine"
	ServeVerify  = "verify"
)

// routeByName returns the join route of an invite type's name.
func routeByName(name string) (*joinRoute, bool) {
	for i := range joinRoutes {
		if joinRoutes[i].invite.Name == name {
			return &joinRoutes[i], true
		}
	}
	return nil, false
}

// serveNames lists what the serve option accepts, for messages.
func serveNames() string {
	names := make([]string, 0, len(joinRoutes)+2)
	for _, r := range joinRoutes {
		names = append(names, r.invite.Name)
	}
	return strings.Join(append(names, ServeExamine, ServeVerify), ", ")
}

// checkServe validates a serve value: a join's invite type, examine or
// verify.
func checkServe(serve string) error {
	if serve == "" || serve == ServeExamine || serve == ServeVerify {
		return nil
	}
	if _, ok := routeByName(serve); ok {
		return nil
	}
	if t, ok := tokens.InviteTypeByName(serve); ok && !t.Join {
		return fmt.Errorf("serve %q: %s invites are consumed with another body, not by a join; the edge does not serve them", serve, serve)
	}
	return fmt.Errorf("serve %q: want one of %s", serve, serveNames())
}

// byUser reports whether the caller is the one who joins.
func (r *joinRoute) byUser() bool { return r.invite.Joiner == tokens.EntityUser }

// locationParts splits the Location template around {id}.
func (r *joinRoute) locationParts() (before, after string) {
	before, after, _ = strings.Cut(r.location, "{id}")
	return before, after
}

// pathSegment returns the n-th segment (from 0) of an absolute path, "" if
// it has fewer; like Caddy's {http.request.uri.path.N}, without
// allocating.
func pathSegment(p string, n int) string {
	p = strings.TrimPrefix(p, "/")
	for ; n > 0; n-- {
		i := strings.IndexByte(p, '/')
		if i < 0 {
			return ""
		}
		p = p[i+1:]
	}
	if i := strings.IndexByte(p, '/'); i >= 0 {
		p = p[:i]
	}
	return p
}
