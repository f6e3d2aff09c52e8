package groupjoin

import (
	"encoding/json"
	"maps"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

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
