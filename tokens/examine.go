package tokens

import (
	"encoding/json"
	"net/netip"
	"strings"
)

// Examined is what a token says about itself, read without verifying it,
// in the JSON shape of Onezone's POST /tokens/examine answer (oz-worker's
// token_rest_translator): the macaroon location as onezoneDomain, the
// token id, "named" or "temporary", and the subject, type and caveats as
// ctool's aai, token_type and caveats modules write them.
type Examined struct {
	OnezoneDomain string          `json:"onezoneDomain"`
	ID            string          `json:"id"`
	Persistence   string          `json:"persistence"`
	Subject       SubjectJSON     `json:"subject"`
	Type          json.RawMessage `json:"type"`
	Caveats       []CaveatJSON    `json:"caveats"`
}

// SubjectJSON is a subject as Onezone serializes it: {"type": "user",
// "id": "…"}; the id is null for "nobody".
type SubjectJSON struct {
	Type string  `json:"type"`
	ID   *string `json:"id"`
}

// CaveatJSON is one caveat as Onezone serializes it. Only the members of
// its kind are set, e.g. {"type": "time", "validUntil": 1700000000} or
// {"type": "geo.country", "filter": "whitelist", "list": ["PL"]}. A caveat
// this package does not understand is {"type": "unknown", "caveat":
// "<its text>"}: listed, never dropped.
type CaveatJSON struct {
	Type       string `json:"type,omitempty"`
	ValidUntil *int64 `json:"validUntil,omitempty"`
	Whitelist  any    `json:"whitelist,omitempty"`
	Filter     string `json:"filter,omitempty"`
	List       any    `json:"list,omitempty"`
	Interface  string `json:"interface,omitempty"`
	Scope      string `json:"scope,omitempty"`
	Caveat     string `json:"caveat,omitempty"`
}

// Examine decodes s as strictly as Authenticate (size, exactly one
// macaroon, no third-party caveats, a well-formed identifier) but checks
// neither the signature nor the caveats: anyone may read what a token
// says, and nothing read here is trusted. Errors are *Error values.
//
// Legacy (version 1) identifiers name no subject nor type in the token
// itself, and invite codes Onezone does not define have no JSON shape:
// both are refused as malformed.
func Examine(s string) (*Examined, error) {
	mac, err := Decode(s)
	if err != nil {
		return nil, err
	}
	if len(mac.Caveats()) > MaxCaveats {
		return nil, malformed("too many caveats")
	}
	id, err := ParseIdentifier(string(mac.Id()))
	if err != nil {
		return nil, err
	}
	if id.Legacy {
		return nil, malformed("legacy tokens cannot be examined")
	}
	typ, err := typeJSON(id.Type)
	if err != nil {
		return nil, err
	}
	e := &Examined{
		OnezoneDomain: mac.Location(),
		ID:            id.TokenID,
		Persistence:   "temporary",
		Subject:       subjectJSON(id.Subject),
		Type:          typ,
		Caveats:       make([]CaveatJSON, 0, len(mac.Caveats())),
	}
	if id.Persistence.Named {
		e.Persistence = "named"
	}
	for _, c := range mac.Caveats() {
		e.Caveats = append(e.Caveats, caveatJSON(string(c.Id)))
	}
	return e, nil
}

// SubjectToJSON is a subject in Onezone's JSON (ctool aai.erl,
// subject_to_json).
func SubjectToJSON(s Subject) SubjectJSON { return subjectJSON(s) }

func subjectJSON(s Subject) SubjectJSON {
	switch s.Kind {
	case "usr":
		return SubjectJSON{Type: "user", ID: &s.ID}
	case "prv":
		return SubjectJSON{Type: "oneprovider", ID: &s.ID}
	}
	return SubjectJSON{Type: "nobody"}
}

// TypeToJSON is a token type in Onezone's JSON (ctool token_type.erl,
// to_json), as Examine writes it.
func TypeToJSON(t TokenType) (json.RawMessage, error) { return typeJSON(t) }

// typeJSON is a token type in Onezone's JSON (ctool token_type.erl,
// to_json).
func typeJSON(t TokenType) (json.RawMessage, error) {
	var v any
	switch t.Kind {
	case TypeAccess:
		inner := map[string]string{}
		if t.SessionID != "" {
			inner["sessionId"] = t.SessionID
		}
		v = map[string]any{"accessToken": inner}
	case TypeIdentity:
		v = map[string]any{"identityToken": map[string]any{}}
	case TypeInvite:
		it, ok := InviteTypeByCode(t.Code)
		if !ok {
			return nil, malformed("unknown invite type")
		}
		// Onezone defines no invite parameters in JSON: always {}.
		v = map[string]any{"inviteToken": map[string]any{
			"inviteType": it.Name,
			it.TargetKey: t.TargetID,
			"parameters": map[string]any{},
		}}
	default:
		return nil, malformed("bad token type")
	}
	return json.Marshal(v)
}

// CaveatToJSON is the caveat text in Onezone's JSON (ctool caveats.erl,
// to_json), as Examine lists it.
func CaveatToJSON(text string) CaveatJSON { return caveatJSON(text) }

// caveatJSON is one caveat in Onezone's JSON (ctool caveats.erl, to_json).
// What ParseCaveat refuses, and data.* caveats other than the three
// Onezone defines, come out as "unknown" with their text.
func caveatJSON(text string) CaveatJSON {
	unknown := CaveatJSON{Type: "unknown", Caveat: text}
	c, err := ParseCaveat(text)
	if err != nil {
		return unknown
	}
	items := func() []string { return strings.Split(c.Value, "|") }
	filter := "whitelist"
	if c.Negated {
		filter = "blacklist"
	}
	switch c.Kind {
	case CaveatTime:
		v := c.Expires
		return CaveatJSON{Type: "time", ValidUntil: &v}
	case CaveatIP:
		masks := items()
		for i, m := range masks {
			masks[i] = ipMask(m)
		}
		return CaveatJSON{Type: "ip", Whitelist: masks}
	case CaveatASN:
		var asns []uint32
		for _, it := range items() {
			n, _ := parseASN(it)
			asns = append(asns, n)
		}
		return CaveatJSON{Type: "asn", Whitelist: asns}
	case CaveatGeoCountry:
		return CaveatJSON{Type: "geo.country", Filter: filter, List: items()}
	case CaveatGeoRegion:
		return CaveatJSON{Type: "geo.region", Filter: filter, List: items()}
	case CaveatAuthorization:
		// Onezone's (deprecated) identity-token scope has no "type".
		return CaveatJSON{Scope: "identityToken"}
	case CaveatService:
		return CaveatJSON{Type: "service", Whitelist: items()}
	case CaveatConsumer:
		return CaveatJSON{Type: "consumer", Whitelist: items()}
	case CaveatInterface:
		return CaveatJSON{Type: "interface", Interface: c.Value}
	case CaveatAPI:
		return CaveatJSON{Type: "api", Whitelist: items()}
	case CaveatData:
		name, _, _ := strings.Cut(text, " ")
		switch name {
		case "data.readonly":
			return CaveatJSON{Type: "data.readonly"}
		case "data.path", "data.objectid":
			return CaveatJSON{Type: name, Whitelist: items()}
		}
	}
	return unknown
}

// ipMask writes an ip caveat item as Onezone does: address/length, the
// length given even for a single address.
func ipMask(item string) string {
	if strings.IndexByte(item, '/') >= 0 {
		return item
	}
	a, err := netip.ParseAddr(item)
	if err != nil {
		return item
	}
	return netip.PrefixFrom(a, a.BitLen()).String()
}
