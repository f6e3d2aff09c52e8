package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Default lifetimes of minted tokens: a token without a time caveat can only
// be revoked by rotating its key (or generation), so minting one takes an
// explicit --ttl 0.
const (
	DefaultInviteTTL = 24 * time.Hour
	DefaultAccessTTL = time.Hour
)

// mintFlags are the flags shared by `mint invite` and `mint access`.
type mintFlags struct {
	persistence string
	generation  uint64
	ttl         string
	tokenID     string
	location    string
	ip          listFlag
	country     listFlag
	notCountry  listFlag
	region      listFlag
	notRegion   listFlag
	asn         listFlag
	caveats     multiFlag
	keys        keyFlags
	json        bool
	reg         *registerFlags // mint invite only: --register (store.go)
	link        string         // mint invite only: --link <join page URL>
}

func (m *mintFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.persistence, "persistence", "", "")
	fs.Uint64Var(&m.generation, "generation", 0, "")
	fs.StringVar(&m.ttl, "ttl", "", "")
	fs.StringVar(&m.tokenID, "token-id", "", "")
	fs.StringVar(&m.location, "location", tokens.DefaultLocation, "")
	fs.Var(&m.ip, "ip", "")
	fs.Var(&m.country, "country", "")
	fs.Var(&m.notCountry, "not-country", "")
	fs.Var(&m.region, "region", "")
	fs.Var(&m.notRegion, "not-region", "")
	fs.Var(&m.asn, "asn", "")
	fs.Var(&m.caveats, "caveat", "")
	m.keys.register(fs)
	fs.BoolVar(&m.json, "json", false, "")
}

// Minted is a freshly minted token. Store-backed extensions (`--register`)
// take the token id and expiry from here.
type Minted struct {
	Token   string
	ID      tokens.Identifier
	Caveats []string
	Expires time.Time // zero: no time caveat
}

func (r *Runner) mintInvite(args []string) int {
	const path = "mint invite"
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	var mf mintFlags
	var typeName, inviter string
	targets := map[tokens.EntityType]*string{}
	for _, t := range []tokens.EntityType{tokens.EntityGroup, tokens.EntitySpace, tokens.EntityHarvester, tokens.EntityCluster, tokens.EntityAtmInventory} {
		targets[t] = new(string)
		fs.StringVar(targets[t], targetFlag(t), "", "")
	}
	var consumers listFlag
	fs.StringVar(&typeName, "type", tokens.UserJoinGroup.Name, "")
	fs.StringVar(&inviter, "inviter", "", "")
	fs.Var(&consumers, "consumer", "")
	fs.StringVar(&mf.link, "link", "", "")
	mf.register(fs)
	var reg registerFlags
	reg.register(fs)
	pos, code, done := r.parseFlags(path, fs, args)
	if done {
		return code
	}
	if err := reg.check(fs); err != nil {
		return r.usageErr(path, "%v", err)
	}
	mf.reg = &reg
	if len(pos) > 0 {
		return r.usageErr(path, "unexpected argument (mint takes flags only)")
	}
	if flagWasSet(fs, "link") {
		if err := checkLink(mf.link); err != nil {
			return r.usageErr(path, "--link: %v", err)
		}
	}
	typ, ok := tokens.InviteTypeByName(typeName)
	if !ok || !typ.Join {
		return r.usageErr(path, "--type: %q is not an invite a join consumes (want %s)", typeName, joinTypeNames())
	}
	want := "--" + targetFlag(typ.Target)
	for t, v := range targets {
		if *v != "" && t != typ.Target {
			return r.usageErr(path, "--%s: a %s invite names its target with %s", targetFlag(t), typ.Name, want)
		}
	}
	target := *targets[typ.Target]
	switch {
	case target == "":
		return r.usageErr(path, "%s is required (the %s to join)", want, typ.Target)
	case !tokens.ValidID(target):
		return r.usageErr(path, "%s: %q is not a valid id (1-256 of A-Z a-z 0-9 . _ ~ @ -)", want, target)
	case inviter == "":
		return r.usageErr(path, "--inviter is required")
	case !tokens.ValidID(inviter):
		return r.usageErr(path, "--inviter: %q is not a valid user id (1-256 of A-Z a-z 0-9 . _ ~ @ -)", inviter)
	}
	var pre []string
	if len(consumers) > 0 {
		items := make([]string, len(consumers))
		for i, c := range consumers {
			items[i] = consumerItem(c)
		}
		c, err := listCaveat("--consumer", "consumer", "=", items)
		if err != nil {
			return r.usageErr(path, "%v", err)
		}
		pre = append(pre, c)
	}
	return r.mint(path, fs, &mf, tokens.PurposeInvite, DefaultInviteTTL, pre, func(p tokens.Persistence, tokenID string) tokens.Identifier {
		return tokens.InviteIDOf(p, typ, inviter, target, tokenID)
	})
}

// targetFlag is the flag naming an invite's target of type t.
func targetFlag(t tokens.EntityType) string {
	return strings.ReplaceAll(t.String(), "_", "-")
}

// joinTypeNames lists the invite types a join consumes.
func joinTypeNames() string {
	var names []string
	for _, t := range tokens.InviteTypes() {
		if t.Join {
			names = append(names, t.Name)
		}
	}
	return strings.Join(names, ", ")
}

func (r *Runner) mintAccess(args []string) int {
	const path = "mint access"
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	var mf mintFlags
	var user, session string
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&session, "session", "", "")
	mf.register(fs)
	pos, code, done := r.parseFlags(path, fs, args)
	if done {
		return code
	}
	if len(pos) > 0 {
		return r.usageErr(path, "unexpected argument (mint takes flags only)")
	}
	switch {
	case user == "":
		return r.usageErr(path, "--user is required")
	case !tokens.ValidID(user):
		return r.usageErr(path, "--user: %q is not a valid user id (1-256 of A-Z a-z 0-9 . _ ~ @ -)", user)
	case session != "" && !tokens.ValidID(session):
		return r.usageErr(path, "--session: %q is not a valid session id", session)
	}
	return r.mint(path, fs, &mf, tokens.PurposeAccess, DefaultAccessTTL, nil, func(p tokens.Persistence, tokenID string) tokens.Identifier {
		return tokens.AccessID(p, user, session, tokenID)
	})
}

// mint does what both mint commands share: persistence, caveats, key,
// minting and output. pre are caveats built by the caller (consumer).
func (r *Runner) mint(path string, fs *flag.FlagSet, mf *mintFlags, purpose tokens.Purpose, defTTL time.Duration,
	pre []string, makeID func(tokens.Persistence, string) tokens.Identifier) int {
	p, err := mintPersistence(mf.persistence, mf.generation, flagWasSet(fs, "generation"))
	if err != nil {
		return r.usageErr(path, "%v", err)
	}
	tokenID := mf.tokenID
	if tokenID == "" {
		tokenID = tokens.NewTokenID()
	} else if !tokens.ValidID(tokenID) {
		return r.usageErr(path, "--token-id: %q is not a valid id (1-256 of A-Z a-z 0-9 . _ ~ @ -)", tokenID)
	}
	if mf.location == "" {
		return r.usageErr(path, "--location must not be empty")
	}
	ttl := defTTL
	if flagWasSet(fs, "ttl") {
		if ttl, err = ParseTTL(mf.ttl); err != nil {
			return r.usageErr(path, "--ttl: %v", err)
		}
	}

	now := r.Now()
	var cavs []string
	var expires time.Time
	if ttl > 0 {
		expires = now.Add(ttl)
		cavs = append(cavs, tokens.TimeCaveat(expires))
		expires = time.Unix(expires.Unix(), 0)
	}
	cavs = append(cavs, pre...)
	built, err := mf.listCaveats()
	if err != nil {
		return r.usageErr(path, "%v", err)
	}
	cavs = append(cavs, built...)
	for i, c := range mf.caveats {
		if _, err := tokens.ParseCaveat(c); err != nil {
			return r.usageErr(path, "--caveat #%d %q: %v", i+1, c, err)
		}
		cavs = append(cavs, c)
	}

	secret, _, err := mf.keys.load(r)
	if err != nil {
		return r.usageErr(path, "%v", err)
	}

	id := makeID(p, tokenID)
	tok, err := tokens.Mint(secret, mf.location, id, cavs...)
	if err != nil {
		// Mint's errors come from the identifier or caveat checks above and
		// never include the secret.
		return r.usageErr(path, "%v", err)
	}
	m := Minted{Token: tok, ID: id, Caveats: cavs, Expires: expires}
	// --register: register m.ID.TokenID until m.Expires before printing.
	if mf.reg != nil && mf.reg.on {
		if code := r.registerMinted(path, mf.reg, m); code != ExitOK {
			return code
		}
	}

	for i, c := range cavs {
		if w := refusedCaveat(purpose, c); w != "" {
			fmt.Fprintf(r.Stderr, "caddy group-join %s: warning: caveat %d %q: group_join will refuse this token: %s\n", path, i+1, c, w)
		}
	}
	if mf.json {
		out := struct {
			Token      string   `json:"token"`
			Identifier string   `json:"identifier"`
			TokenID    string   `json:"token_id"`
			Caveats    []string `json:"caveats"`
			Expires    string   `json:"expires,omitempty"`
			Link       string   `json:"link,omitempty"`
		}{m.Token, m.ID.String(), m.ID.TokenID, m.Caveats, "", ""}
		if out.Caveats == nil {
			out.Caveats = []string{}
		}
		if !m.Expires.IsZero() {
			out.Expires = m.Expires.UTC().Format(time.RFC3339)
		}
		if mf.link != "" {
			out.Link = inviteLink(mf.link, m.Token)
		}
		writeJSON(r.Stdout, out)
		return ExitOK
	}
	if mf.link != "" {
		fmt.Fprintln(r.Stdout, inviteLink(mf.link, m.Token))
		return ExitOK
	}
	fmt.Fprintln(r.Stdout, m.Token)
	return ExitOK
}

// checkLink accepts the address of a join page: an absolute http or https
// URL without a fragment (the invite becomes the fragment).
func checkLink(link string) error {
	u, err := url.Parse(link)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", link)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("%q is not an absolute http(s) URL such as https://example.org/join", link)
	case u.Fragment != "" || strings.Contains(link, "#"):
		return fmt.Errorf("%q already has a fragment (#…): the invite goes there", link)
	}
	return nil
}

// inviteLink is the link form of an invite: <join page>#<invite>. In the
// fragment, the invite never reaches a server or its logs; Onedata's
// serialized form needs no escaping there.
func inviteLink(page, token string) string { return page + "#" + token }

// listCaveats builds the caveats of the list flags, in a fixed order.
func (mf *mintFlags) listCaveats() ([]string, error) {
	var out []string
	add := func(flagName, name, op string, items []string, norm func(string) string) error {
		if len(items) == 0 {
			return nil
		}
		if norm != nil {
			n := make([]string, len(items))
			for i, it := range items {
				n[i] = norm(it)
			}
			items = n
		}
		c, err := listCaveat(flagName, name, op, items)
		if err == nil {
			out = append(out, c)
		}
		return err
	}
	for _, step := range []func() error{
		func() error { return add("--ip", "ip", "=", mf.ip, nil) },
		func() error { return add("--asn", "asn", "=", mf.asn, nil) },
		func() error { return add("--country", "geo.country", "=", mf.country, strings.ToUpper) },
		func() error { return add("--not-country", "geo.country", "!=", mf.notCountry, strings.ToUpper) },
		func() error { return add("--region", "geo.region", "=", mf.region, regionName) },
		func() error { return add("--not-region", "geo.region", "!=", mf.notRegion, regionName) },
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// listCaveat builds "name op a|b|…" and checks it with tokens.ParseCaveat;
// an error names the flag and the first bad item.
func listCaveat(flagName, name, op string, items []string) (string, error) {
	c := name + " " + op + " " + strings.Join(items, "|")
	if _, err := tokens.ParseCaveat(c); err == nil {
		return c, nil
	}
	for _, it := range items {
		if _, err := tokens.ParseCaveat(name + " " + op + " " + it); err != nil {
			return "", fmt.Errorf("%s: %q is not valid here (%s)", flagName, it, itemHint(name))
		}
	}
	return "", fmt.Errorf("%s: invalid list", flagName)
}

func itemHint(name string) string {
	switch name {
	case "ip":
		return "want an address or CIDR such as 10.0.0.0/8"
	case "asn":
		return "want an AS number such as 64512"
	case "geo.country":
		return "want ISO 3166-1 alpha-2 codes such as PL"
	case "geo.region":
		return "want one of Africa, Antarctica, Asia, Europe, EU, NorthAmerica, Oceania, SouthAmerica"
	case "consumer":
		return "want a user id, or usr-/grp-/prv-<id>, where <id> may be *"
	}
	return "malformed"
}

// consumerItem turns a --consumer value into a consumer caveat item: a bare
// user id (or *) becomes usr-<id>; usr-, grp- and prv- entries are kept.
func consumerItem(v string) string {
	for _, p := range []string{"usr-", "grp-", "prv-"} {
		if strings.HasPrefix(v, p) {
			return v
		}
	}
	return "usr-" + v
}

// regionName maps a region name case-insensitively to Onedata's spelling.
func regionName(v string) string {
	for _, n := range []string{"Africa", "Antarctica", "Asia", "Europe", "EU", "NorthAmerica", "Oceania", "SouthAmerica"} {
		if strings.EqualFold(v, n) {
			return n
		}
	}
	return v
}

// mintPersistence resolves --persistence and --generation. The default is
// a temporary token of generation 0 (or of --generation N): it is valid on
// its own, without registration in an invite store.
func mintPersistence(v string, gen uint64, genSet bool) (tokens.Persistence, error) {
	switch v {
	case "", "tmp", "temporary":
		return tokens.Persistence{Generation: gen}, nil
	case "nmd", "named":
		if genSet {
			return tokens.Persistence{}, errors.New("--generation applies to temporary (tmp) tokens only, not to --persistence nmd")
		}
		return tokens.Persistence{Named: true}, nil
	}
	if g, ok := strings.CutPrefix(v, "tmp-"); ok {
		n, err := strconv.ParseUint(g, 10, 64)
		if err == nil && strconv.FormatUint(n, 10) == g {
			if genSet && n != gen {
				return tokens.Persistence{}, fmt.Errorf("--persistence %s contradicts --generation %d", v, gen)
			}
			return tokens.Persistence{Generation: n}, nil
		}
	}
	return tokens.Persistence{}, fmt.Errorf("--persistence: %q is not nmd, tmp or tmp-<generation>", v)
}

// ParseTTL parses a token lifetime: a Go duration (90s, 30m, 24h), with an
// optional leading number of days (7d, 1d12h). 0 means no time caveat.
// Negative lifetimes are refused.
func ParseTTL(s string) (time.Duration, error) {
	const maxDays = 100 * 365
	if s == "" {
		return 0, errors.New("empty duration (want e.g. 30m, 24h, 7d, or 0 for no expiry)")
	}
	var days time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 32)
		if err != nil || n > maxDays {
			return 0, fmt.Errorf("%q is not a valid duration (want e.g. 30m, 24h, 7d, or 0 for no expiry)", s)
		}
		days, rest = time.Duration(n)*24*time.Hour, s[i+1:]
		if rest == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil || (days > 0 && strings.HasPrefix(rest, "-")) {
		return 0, fmt.Errorf("%q is not a valid duration (want e.g. 30m, 24h, 7d, or 0 for no expiry)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative: a token must not be born expired", s)
	}
	total := days + d
	if total < days || total > maxDays*24*time.Hour {
		return 0, fmt.Errorf("%q is too long (at most %d days)", s, maxDays)
	}
	return total, nil
}

// refusedCaveat reports why group_join would refuse any token of the given
// purpose carrying caveat c, whatever the request; "" when c may hold. Only
// caveats that do not depend on the request are judged here.
func refusedCaveat(purpose tokens.Purpose, text string) string {
	c, err := tokens.ParseCaveat(text)
	if err != nil {
		return err.Error()
	}
	switch c.Kind {
	case tokens.CaveatTime, tokens.CaveatIP, tokens.CaveatASN, tokens.CaveatGeoCountry, tokens.CaveatGeoRegion:
		return ""
	case tokens.CaveatConsumer:
		if purpose == tokens.PurposeInvite {
			return ""
		}
	}
	env := &tokens.Env{Service: tokens.DefaultService}
	if err := c.Check(purpose, env); err != nil {
		msg := err.Error()
		if c.Kind == tokens.CaveatService {
			msg += " (unless the handler's service matches; the default is " + tokens.DefaultService + ")"
		}
		return msg
	}
	return ""
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
