package tokens

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// CaveatKind names the Onedata caveat families.
type CaveatKind uint8

// Caveat kinds. Data and Authorization are recognised only to be refused:
// they make no sense for a group join and failing them keeps us closed.
const (
	CaveatTime CaveatKind = iota + 1
	CaveatIP
	CaveatASN
	CaveatGeoCountry
	CaveatGeoRegion
	CaveatConsumer
	CaveatInterface
	CaveatService
	CaveatAPI
	CaveatData
	CaveatAuthorization
)

var caveatNames = [...]string{
	CaveatTime:          "time",
	CaveatIP:            "ip",
	CaveatASN:           "asn",
	CaveatGeoCountry:    "geo.country",
	CaveatGeoRegion:     "geo.region",
	CaveatConsumer:      "consumer",
	CaveatInterface:     "interface",
	CaveatService:       "service",
	CaveatAPI:           "api",
	CaveatData:          "data",
	CaveatAuthorization: "authorization",
}

func (k CaveatKind) String() string {
	if int(k) < len(caveatNames) && caveatNames[k] != "" {
		return caveatNames[k]
	}
	return "unknown"
}

// Caveat is one parsed first-party caveat in Onedata's textual syntax.
// List values keep their '|'-joined text; every item was validated when
// parsing, and checks walk the list without allocating.
type Caveat struct {
	Kind    CaveatKind
	Negated bool   // geo.* with "!="
	Value   string // text after the operator
	Expires int64  // time caveats: unix seconds
	Raw     string
	// api caveats: the entity types an item allows joining (a bit per
	// EntityType), decided once at parse so that a cached token does not
	// parse its items again.
	joins uint16
}

func (c Caveat) String() string { return c.Raw }

// Onedata's region names (geo.region).
var regionNames = map[string]bool{
	"Africa": true, "Antarctica": true, "Asia": true, "Europe": true, "EU": true,
	"NorthAmerica": true, "Oceania": true, "SouthAmerica": true,
}

// ParseCaveat parses one caveat strictly in Onedata's syntax (single spaces
// around the operator, no empty list items). An unknown or malformed caveat
// is an *Error of KindCaveat.
func ParseCaveat(s string) (Caveat, error) {
	c := Caveat{Raw: s}
	bad := func(kind CaveatKind, why string) (Caveat, error) {
		return Caveat{}, &Error{Kind: KindCaveat, Caveat: kind.String(), Detail: why, Text: s}
	}
	name, op, val := splitCaveat(s)
	switch name {
	case "time":
		n, ok := parseUint(val)
		if op != "<" || !ok || n > 1<<62 {
			return bad(CaveatTime, "malformed time caveat")
		}
		c.Kind, c.Expires = CaveatTime, int64(n)
	case "ip":
		c.Kind = CaveatIP
		if op != "=" || !eachItem(val, validIPItem) {
			return bad(CaveatIP, "malformed ip caveat")
		}
	case "asn":
		c.Kind = CaveatASN
		if op != "=" || !eachItem(val, func(v string) bool { _, ok := parseASN(v); return ok }) {
			return bad(CaveatASN, "malformed asn caveat")
		}
	case "geo.country", "geo.region":
		c.Kind, c.Negated = CaveatGeoCountry, op == "!="
		valid := validCountryItem
		if name == "geo.region" {
			c.Kind, valid = CaveatGeoRegion, func(v string) bool { return regionNames[v] }
		}
		if (op != "=" && op != "!=") || !eachItem(val, valid) {
			return bad(c.Kind, "malformed "+name+" caveat")
		}
	case "consumer":
		c.Kind = CaveatConsumer
		if op != "=" || !eachItem(val, validConsumerItem) {
			return bad(CaveatConsumer, "malformed consumer caveat")
		}
	case "interface":
		c.Kind = CaveatInterface
		if op != "=" || (val != "rest" && val != "oneclient" && val != "graphsync") {
			return bad(CaveatInterface, "malformed interface caveat")
		}
	case "service":
		c.Kind = CaveatService
		if op != "=" || !eachItem(val, validServiceItem) {
			return bad(CaveatService, "malformed service caveat")
		}
	case "api":
		c.Kind = CaveatAPI
		if op != "=" || !eachItem(val, func(v string) bool { _, ok := parseAPIItem(v); return ok }) {
			return bad(CaveatAPI, "malformed api caveat")
		}
		for it := range strings.SplitSeq(val, "|") {
			c.joins |= joinsAllowed(it)
		}
	case "authorization":
		c.Kind = CaveatAuthorization
		if op != "=" || val != "none" {
			return bad(CaveatAuthorization, "malformed authorization caveat")
		}
	default:
		if s == "data.readonly" || strings.HasPrefix(name, "data.") && op == "=" && val != "" {
			c.Kind = CaveatData
			break
		}
		return Caveat{}, &Error{Kind: KindCaveat, Caveat: "unknown", Detail: "caveat not understood", Text: s}
	}
	c.Value = val
	return c, nil
}

// splitCaveat splits "name op value" on single spaces; anything else
// yields empty parts that no case accepts.
func splitCaveat(s string) (name, op, val string) {
	name, rest, ok := strings.Cut(s, " ")
	if !ok {
		return s, "", ""
	}
	op, val, ok = strings.Cut(rest, " ")
	if !ok || val == "" || val[0] == ' ' {
		return name, "", ""
	}
	return name, op, val
}

// eachItem reports whether every '|'-separated item of v is non-empty and
// accepted by ok.
func eachItem(v string, ok func(string) bool) bool {
	if v == "" {
		return false
	}
	for rest := v; ; {
		item, r, more := strings.Cut(rest, "|")
		if item == "" || !ok(item) {
			return false
		}
		if !more {
			return true
		}
		rest = r
	}
}

// anyItem reports whether some item of v satisfies match; v was validated
// at parse.
func anyItem(v string, match func(string) bool) bool {
	for rest := v; ; {
		item, r, more := strings.Cut(rest, "|")
		if match(item) {
			return true
		}
		if !more {
			return false
		}
		rest = r
	}
}

func parseIPItem(v string) (netip.Prefix, bool) {
	if strings.IndexByte(v, '/') >= 0 {
		p, err := netip.ParsePrefix(v)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

func validIPItem(v string) bool { _, ok := parseIPItem(v); return ok }

func parseASN(v string) (uint32, bool) {
	n, ok := parseUint(v)
	if !ok || n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

func validCountryItem(v string) bool {
	return len(v) == 2 && v[0] >= 'A' && v[0] <= 'Z' && v[1] >= 'A' && v[1] <= 'Z'
}

// consumer items: usr-<id>, grp-<id>, prv-<id>, where <id> may be '*'.
func validConsumerItem(v string) bool {
	kind, id, ok := strings.Cut(v, "-")
	return ok && (kind == "usr" || kind == "grp" || kind == "prv") && (id == "*" || ValidID(id))
}

// service items: <type>-<id> with Onedata's service types, <id> may be '*'.
func validServiceItem(v string) bool {
	kind, id, ok := strings.Cut(v, "-")
	return ok && isServiceType(kind) && (id == "*" || ValidID(id))
}

func isServiceType(s string) bool {
	return s == "ozw" || s == "ozp" || s == "opw" || s == "opp"
}

type apiItem struct {
	service, operation, typ, id, aspect, scope string
}

// parseAPIItem parses <service>/<operation>/<type>.<id>.<aspect>:<scope>.
func parseAPIItem(v string) (apiItem, bool) {
	var it apiItem
	var gri string
	var ok bool
	if it.service, v, ok = strings.Cut(v, "/"); !ok {
		return it, false
	}
	if it.operation, gri, ok = strings.Cut(v, "/"); !ok {
		return it, false
	}
	if it.service != "all" && !isServiceType(it.service) {
		return it, false
	}
	switch it.operation {
	case "all", "create", "get", "update", "delete":
	default:
		return it, false
	}
	if it.typ, gri, ok = strings.Cut(gri, "."); !ok {
		return it, false
	}
	if it.id, gri, ok = strings.Cut(gri, "."); !ok {
		return it, false
	}
	i := strings.LastIndexByte(gri, ':')
	if i < 0 {
		return it, false
	}
	it.aspect, it.scope = gri[:i], gri[i+1:]
	for _, f := range [...]string{it.typ, it.id, it.aspect, it.scope} {
		if f == "" || strings.ContainsAny(f, "/ ") {
			return it, false
		}
	}
	return it, true
}

// Purpose says what a token is presented as; caveat rules differ.
type Purpose uint8

// Purposes.
const (
	PurposeInvite Purpose = iota + 1
	PurposeAccess
)

// Env is what caveats are checked against.
type Env struct {
	Now      time.Time
	ClientIP netip.Addr // invalid when unknown: ip/asn/geo caveats then fail
	UserID   string     // the caller's bare user id, for invite consumer caveats
	Service  string     // this service's id for service caveats, e.g. "ozw-onezone"
	Geo      Geo        // nil: asn/geo caveats fail
	// JoinTarget is the type of entity the request joins, which an access
	// token's api caveats must allow; zero means EntityGroup.
	JoinTarget EntityType
}

// Check reports whether the caveat holds for the purpose in env. Consumer
// caveats of invites are not checked here (see Token.CheckInvite): they
// answer a different status.
func (c *Caveat) Check(p Purpose, env *Env) error {
	fail := func(why string) error {
		return &Error{Kind: KindCaveat, Caveat: c.Kind.String(), Detail: why, Text: c.Raw}
	}
	switch c.Kind {
	case CaveatTime:
		if env.Now.Unix() >= c.Expires {
			return &Error{Kind: KindExpired, Caveat: "time", Text: c.Raw}
		}
		return nil
	case CaveatIP:
		if !env.ClientIP.IsValid() {
			return fail("client address unknown")
		}
		ip := env.ClientIP.Unmap()
		if !anyItem(c.Value, func(v string) bool { pfx, _ := parseIPItem(v); return pfx.Contains(ip) }) {
			return fail("client address not allowed")
		}
		return nil
	case CaveatASN:
		if env.Geo == nil {
			return fail("no ASN database configured")
		}
		if !env.ClientIP.IsValid() {
			return fail("client address unknown")
		}
		asn, err := env.Geo.ASN(env.ClientIP.Unmap())
		if err != nil {
			return fail("ASN lookup failed: " + err.Error())
		}
		if !anyItem(c.Value, func(v string) bool { n, _ := parseASN(v); return n == asn }) {
			return fail("client network not allowed")
		}
		return nil
	case CaveatGeoCountry, CaveatGeoRegion:
		if env.Geo == nil {
			return fail("no country database configured")
		}
		if !env.ClientIP.IsValid() {
			return fail("client address unknown")
		}
		country, err := env.Geo.Country(env.ClientIP.Unmap())
		if err != nil {
			return fail("country lookup failed: " + err.Error())
		}
		var in bool
		if c.Kind == CaveatGeoCountry {
			in = anyItem(c.Value, func(v string) bool { return v == country })
		} else {
			in = anyItem(c.Value, func(v string) bool { return InRegion(country, v) })
		}
		if in == c.Negated {
			return fail("client location not allowed")
		}
		return nil
	case CaveatInterface:
		if p != PurposeAccess || c.Value != "rest" {
			return fail("interface not allowed here")
		}
		return nil
	case CaveatService:
		if p != PurposeAccess || !anyItem(c.Value, func(v string) bool { return serviceMatches(v, env.Service) }) {
			return fail("service not allowed here")
		}
		return nil
	case CaveatAPI:
		target := env.JoinTarget
		if target == 0 {
			target = EntityGroup
		}
		if p != PurposeAccess || c.joins&(1<<target) == 0 {
			return fail("operation not allowed by api caveat")
		}
		return nil
	case CaveatConsumer:
		if p == PurposeInvite {
			if !c.consumerMatches(env.UserID) {
				return &Error{Kind: KindConsumer, Caveat: "consumer", Text: c.Raw}
			}
			return nil
		}
		return fail("consumer caveats are not accepted on access tokens")
	}
	return fail("caveat not accepted here")
}

// consumerMatches: only usr- entries can match at the edge; grp-/prv-
// membership is not known here.
func (c *Caveat) consumerMatches(user string) bool {
	return user != "" && anyItem(c.Value, func(v string) bool {
		id, ok := strings.CutPrefix(v, "usr-")
		return ok && (id == "*" || id == user)
	})
}

func serviceMatches(item, service string) bool {
	kind, id, _ := strings.Cut(item, "-")
	skind, sid, _ := strings.Cut(service, "-")
	return kind == skind && (id == "*" || id == sid)
}

// joinsAllowed returns the entity types (a bit each) whose join an api
// caveat item allows: service all/ozw, operation all/create, aspect
// */join, type * (every one) or the joined entity's type as Onezone
// serializes it ("group", "space", …); id and scope are ignored.
func joinsAllowed(v string) uint16 {
	it, ok := parseAPIItem(v)
	if !ok || (it.service != "all" && it.service != "ozw") ||
		(it.operation != "all" && it.operation != "create") ||
		(it.aspect != "*" && it.aspect != "join") {
		return 0
	}
	var bits uint16
	for t := EntityUser; t <= EntityProvider; t++ {
		if it.typ == "*" || it.typ == t.String() {
			bits |= 1 << t
		}
	}
	return bits
}

// TimeCaveat returns the Onedata caveat "time < N" for t.
func TimeCaveat(t time.Time) string { return "time < " + strconv.FormatInt(t.Unix(), 10) }

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }
