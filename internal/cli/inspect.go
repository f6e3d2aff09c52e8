package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/macaroon.v2"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// Report is what inspect finds out about a token; --json prints it.
type Report struct {
	// Decoded is false when the input is not exactly one macaroon in a
	// supported serialized form; Error then says why.
	Decoded bool `json:"decoded"`
	// Format is the serialized form detected: "onedata" (escaped
	// base64url, Onedata's own), "base64" or "json".
	Format string `json:"format,omitempty"`
	// MacaroonVersion is the macaroon format version, 1 or 2.
	MacaroonVersion int `json:"macaroon_version,omitempty"`
	// Source is "request body" when the input was a {"token": …} body.
	Source     string            `json:"source,omitempty"`
	Location   string            `json:"location,omitempty"`
	Identifier *IdentifierReport `json:"identifier,omitempty"`
	Caveats    []CaveatReport    `json:"caveats"`
	Expires    string            `json:"expires,omitempty"` // earliest time caveat, RFC3339
	Expired    bool              `json:"expired"`
	// Signature is "valid", "invalid" or "not checked" (no key given, or no
	// key for the token: see SignatureNote).
	Signature     string `json:"signature"`
	SignatureNote string `json:"signature_note,omitempty"`
	// Key is the key the identifier selects ("default key", "key of
	// generation N"); set when a key was given.
	Key string `json:"key,omitempty"`
	// CheckedAs is "invite" or "access": how the caveats were checked.
	CheckedAs string `json:"checked_as,omitempty"`
	// Valid is null when nothing was verified (no key), else whether the
	// token verifies and every caveat holds now.
	Valid *bool `json:"valid"`
	// Error is why the token is refused (or not decoded).
	Error string `json:"error,omitempty"`
	// FailedCaveat is the 1-based index of the caveat that fails; 0 when
	// the failure is not a caveat's.
	FailedCaveat int    `json:"failed_caveat,omitempty"`
	FailedKind   string `json:"failed_caveat_kind,omitempty"`
}

// IdentifierReport is the parsed identifier.
type IdentifierReport struct {
	Raw          string  `json:"raw"`
	Legacy       bool    `json:"legacy"`
	Version      int     `json:"version,omitempty"`
	Persistence  string  `json:"persistence,omitempty"`
	Named        bool    `json:"named,omitempty"`
	Generation   *uint64 `json:"generation,omitempty"`
	Subject      string  `json:"subject,omitempty"`
	Type         string  `json:"type,omitempty"`
	Kind         string  `json:"kind,omitempty"` // "access", "identity", "invite"
	SessionID    string  `json:"session_id,omitempty"`
	InviteCode   string  `json:"invite_code,omitempty"`
	InviteTarget string  `json:"invite_target,omitempty"`
	InviteParams string  `json:"invite_params,omitempty"`
	TokenID      string  `json:"token_id,omitempty"`
	Error        string  `json:"error,omitempty"` // malformed identifier
}

// CaveatReport is one first-party caveat.
type CaveatReport struct {
	Index   int    `json:"index"` // 1-based
	Text    string `json:"text"`
	Kind    string `json:"kind"` // time, ip, …, "unknown"
	Negated bool   `json:"negated,omitempty"`
	Expires string `json:"expires,omitempty"` // time caveats, RFC3339
	Expired *bool  `json:"expired,omitempty"` // time caveats
	Error   string `json:"error,omitempty"`   // not understood
	// Check is "ok" or "fails" when the token was verified; Reason says
	// why it fails.
	Check  string `json:"check,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (r *Runner) inspect(args []string) int {
	const path = "inspect"
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	var (
		keys       keyFlags
		genKeys    genKeyFlag
		asJSON     bool
		user, ip   string
		geoipDB    string
		asnDB      string
		service    string
		clientAddr netip.Addr
	)
	keys.register(fs)
	fs.Var(&genKeys, "generation-key", "")
	fs.BoolVar(&asJSON, "json", false, "")
	fs.StringVar(&user, "user", "", "")
	fs.StringVar(&ip, "ip", "", "")
	fs.StringVar(&geoipDB, "geoip-db", "", "")
	fs.StringVar(&asnDB, "asn-db", "", "")
	fs.StringVar(&service, "service", tokens.DefaultService, "")
	pos, code, done := r.parseFlags(path, fs, args)
	if done {
		return code
	}
	if len(pos) > 1 {
		return r.usageErr(path, "too many arguments: give one token, or - (or nothing) to read it from stdin")
	}
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return r.usageErr(path, "--ip: %q is not an IP address (the client address to check ip/asn/geo caveats against)", ip)
		}
		clientAddr = a
	}
	user = strings.TrimPrefix(user, "usr-")
	if user != "" && !tokens.ValidID(user) {
		return r.usageErr(path, "--user: %q is not a valid user id", user)
	}
	gens, err := genKeys.parse()
	if err != nil {
		return r.usageErr(path, "%v", err)
	}
	secret, _, err := keys.load(r)
	if err != nil && !errors.Is(err, errNoKey) {
		return r.usageErr(path, "%v", err)
	}

	var raw string
	if len(pos) == 1 && pos[0] != "-" {
		raw = pos[0]
	} else {
		b, err := io.ReadAll(io.LimitReader(r.Stdin, tokens.MaxTokenSize+64<<10))
		if err != nil {
			return r.usageErr(path, "reading the token from stdin: %v", err)
		}
		raw = string(b)
	}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return r.usageErr(path, "no token: pass it as an argument, or on stdin (with - or no argument)")
	}

	var keyring *tokens.Keyring
	if secret != nil || len(gens) > 0 {
		if keyring, err = tokens.NewKeyring(secret, gens); err != nil {
			return r.usageErr(path, "%v", err)
		}
	}
	v := tokens.Verifier{Keys: keyring, Service: service}
	if geoipDB != "" || asnDB != "" {
		db, err := tokens.OpenGeoDB(geoipDB, asnDB)
		if err != nil {
			return r.usageErr(path, "%v", err)
		}
		defer db.Close()
		v.Geo = db
	}
	env := v.Env(r.Now(), "", user)
	env.ClientIP = clientAddr

	rep := examine(raw, &v, gens, env)
	if asJSON {
		writeJSON(r.Stdout, rep)
	} else {
		printReport(r.Stdout, rep, env)
	}
	switch {
	case !rep.Decoded:
		if !asJSON {
			fmt.Fprintf(r.Stderr, "caddy group-join inspect: %s\n", rep.Error)
		}
		return ExitInvalid
	case rep.Valid != nil && !*rep.Valid:
		return ExitInvalid
	}
	return ExitOK
}

// examine decodes raw and, when v has keys, verifies it at env.
func examine(raw string, v *tokens.Verifier, gens map[uint64][]byte, env *tokens.Env) *Report {
	rep := &Report{Caveats: []CaveatReport{}, Signature: "not checked"}
	m, err := tokens.Decode(raw)
	if err != nil && raw[0] == '{' {
		// A request body {"token": "<serialized invite>"}.
		var body struct {
			Token *string `json:"token"`
		}
		if json.Unmarshal([]byte(raw), &body) == nil && body.Token != nil && *body.Token != "" {
			if m2, err2 := tokens.Decode(*body.Token); err2 == nil {
				raw, m, err, rep.Source = *body.Token, m2, nil, "request body"
			}
		}
	}
	if err != nil {
		rep.Error = err.Error()
		rep.SignatureNote = "token not decoded"
		f := false
		rep.Valid = &f
		return rep
	}
	rep.Decoded = true
	rep.Format = detectFormat(raw)
	rep.MacaroonVersion = 1
	if m.Version() != macaroon.V1 {
		rep.MacaroonVersion = 2
	}
	rep.Location = m.Location()

	idText := string(m.Id())
	id, idErr := tokens.ParseIdentifier(idText)
	rep.Identifier = identifierReport(idText, id, idErr)

	var earliest time.Time
	parsed := make([]tokens.Caveat, len(m.Caveats()))
	parseOK := make([]bool, len(parsed))
	for i, mc := range m.Caveats() {
		cr := CaveatReport{Index: i + 1, Text: string(mc.Id), Kind: "unknown"}
		c, err := tokens.ParseCaveat(cr.Text)
		if err != nil {
			cr.Error = err.Error()
			if k := caveatKindOf(err); k != "" {
				cr.Kind = k
			}
		} else {
			parsed[i], parseOK[i] = c, true
			cr.Kind, cr.Negated = c.Kind.String(), c.Negated
			if c.Kind == tokens.CaveatTime {
				exp := time.Unix(c.Expires, 0)
				passed := !env.Now.Before(exp)
				cr.Expires, cr.Expired = exp.UTC().Format(time.RFC3339), &passed
				if earliest.IsZero() || exp.Before(earliest) {
					earliest = exp
				}
			}
		}
		rep.Caveats = append(rep.Caveats, cr)
	}
	if !earliest.IsZero() {
		rep.Expires = earliest.UTC().Format(time.RFC3339)
		rep.Expired = !env.Now.Before(earliest)
	}

	if v.Keys == nil {
		rep.SignatureNote = "no key given"
		return rep
	}
	invalid := func(msg string) *Report {
		f := false
		rep.Valid, rep.Error = &f, msg
		return rep
	}
	if idErr != nil {
		rep.SignatureNote = "identifier is malformed, so no key can be chosen"
		return invalid(idErr.Error())
	}
	rep.Key = keyChoice(id, gens)
	tok, err := v.Keys.Authenticate(raw)
	switch tokens.KindOf(err) {
	case 0:
		rep.Signature = "valid"
	case tokens.KindNoKey, tokens.KindRevoked:
		rep.SignatureNote = err.Error()
		return invalid(err.Error())
	case tokens.KindSignature:
		rep.Signature = "invalid"
		rep.SignatureNote = "does not verify with the " + rep.Key
		return invalid(err.Error())
	case tokens.KindCaveat:
		// Authenticate parses caveats only after the signature verified.
		rep.Signature = "valid"
		for i, ok := range parseOK {
			if !ok {
				rep.Caveats[i].Check, rep.Caveats[i].Reason = "fails", rep.Caveats[i].Error
				if rep.FailedCaveat == 0 {
					rep.FailedCaveat, rep.FailedKind = i+1, rep.Caveats[i].Kind
				}
			}
		}
		return invalid(err.Error())
	default:
		return invalid(err.Error())
	}

	purpose := tokens.PurposeAccess
	rep.CheckedAs = "access"
	if !id.Legacy && id.Type.Kind == tokens.TypeInvite {
		purpose, rep.CheckedAs = tokens.PurposeInvite, "invite"
	}
	// Each caveat on its own, then the order CheckInvite/CheckAccess use
	// (an invite's consumer caveats last) to name the one that fails.
	fails := make([]bool, len(tok.Caveats))
	for i := range tok.Caveats {
		if err := tok.Caveats[i].Check(purpose, env); err != nil {
			fails[i] = true
			rep.Caveats[i].Check, rep.Caveats[i].Reason = "fails", err.Error()
		} else {
			rep.Caveats[i].Check = "ok"
		}
	}
	if purpose == tokens.PurposeInvite {
		// As the invite of its own type's join; no joiner is named.
		typ, _ := tokens.InviteTypeByCode(tok.ID.Type.Code)
		if !typ.Join {
			typ = tokens.UserJoinGroup // refused as the wrong type
		}
		env.JoinTarget = typ.Target
		err = tok.CheckJoin(typ, tokens.Entity{}, env)
	} else {
		err = tok.CheckAccess(env)
	}
	if err == nil {
		t := true
		rep.Valid = &t
		return rep
	}
	if tokens.KindOf(err) != tokens.KindWrongType {
		for pass := 0; pass < 2 && rep.FailedCaveat == 0; pass++ {
			for i := range tok.Caveats {
				consumer := purpose == tokens.PurposeInvite && tok.Caveats[i].Kind == tokens.CaveatConsumer
				if fails[i] && consumer == (pass == 1) {
					rep.FailedCaveat, rep.FailedKind = i+1, rep.Caveats[i].Kind
					break
				}
			}
		}
	}
	return invalid(err.Error())
}

func caveatKindOf(err error) string {
	var e *tokens.Error
	if errors.As(err, &e) {
		return e.Caveat
	}
	return ""
}

func identifierReport(raw string, id tokens.Identifier, err error) *IdentifierReport {
	ir := &IdentifierReport{Raw: raw}
	if err != nil {
		ir.Error = err.Error()
		if !strings.Contains(raw, "/") {
			ir.Legacy = true
		}
		return ir
	}
	if id.Legacy {
		ir.Legacy, ir.Kind = true, "access"
		return ir
	}
	ir.Version = 2
	ir.Persistence = id.Persistence.String()
	ir.Named = id.Persistence.Named
	if !id.Persistence.Named {
		g := id.Persistence.Generation
		ir.Generation = &g
	}
	ir.Subject = id.Subject.String()
	ir.Type = id.Type.String()
	switch id.Type.Kind {
	case tokens.TypeAccess:
		ir.Kind, ir.SessionID = "access", id.Type.SessionID
	case tokens.TypeIdentity:
		ir.Kind = "identity"
	case tokens.TypeInvite:
		ir.Kind = "invite"
		ir.InviteCode, ir.InviteTarget, ir.InviteParams = id.Type.Code, id.Type.TargetID, id.Type.Params
	}
	ir.TokenID = id.TokenID
	return ir
}

// detectFormat names the serialized form of raw, which tokens.Decode
// accepted: it mirrors Decode's order (JSON; Onedata's escaped form; plain
// base64).
func detectFormat(raw string) string {
	if raw[0] == '{' {
		return "json"
	}
	if s, ok := onedataUnescape(raw); ok {
		enc := base64.RawURLEncoding
		if strings.ContainsAny(s, "+/") {
			enc = base64.RawStdEncoding
		}
		if b, err := enc.DecodeString(strings.TrimRight(s, "=")); err == nil {
			var ms macaroon.Slice
			if ms.UnmarshalBinary(b) == nil && len(ms) == 1 {
				return "onedata"
			}
		}
	}
	return "base64"
}

// onedataUnescape reverses Onedata's escape ('0'→"00", '_'→"01", '-'→"02",
// '/'→"03", '+'→"04", '='→"05"); ok is false when s is not in that form.
func onedataUnescape(s string) (string, bool) {
	const escapes = "0_-/+="
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '0':
			if i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '5' {
				return "", false
			}
			b.WriteByte(escapes[s[i+1]-'0'])
			i++
		case '_', '-', '/', '+', '=':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

var formatNames = map[string]string{
	"onedata": "onedata (escaped base64url, Onedata's form)",
	"base64":  "base64 (plain, no Onedata escape)",
	"json":    "json",
}

// printReport writes the human-readable report.
func printReport(w io.Writer, rep *Report, env *tokens.Env) {
	line := func(label, format string, a ...any) {
		fmt.Fprintf(w, "%-15s %s\n", label+":", fmt.Sprintf(format, a...))
	}
	if !rep.Decoded {
		line("result", "INVALID: %s", rep.Error)
		return
	}
	line("format", "%s, macaroon V%d", formatNames[rep.Format], rep.MacaroonVersion)
	if rep.Source != "" {
		line("source", "%s", rep.Source)
	}
	line("location", "%s", printable(rep.Location))
	id := rep.Identifier
	line("identifier", "%s", printable(id.Raw))
	switch {
	case id.Error != "":
		line("  error", "%s", id.Error)
	case id.Legacy:
		line("  version", "legacy (no '/'): an access token, never an invite")
	default:
		line("  version", "%d", id.Version)
		if id.Named {
			line("  persistence", "nmd (named)")
		} else {
			line("  persistence", "%s (temporary, generation %d)", id.Persistence, *id.Generation)
		}
		subject := id.Subject
		if id.Kind == "invite" {
			subject += " (inviter)"
		}
		line("  subject", "%s", subject)
		switch id.Kind {
		case "access":
			if id.SessionID != "" {
				line("  type", "access token, session %s", id.SessionID)
			} else {
				line("  type", "access token")
			}
		case "identity":
			line("  type", "identity token")
		case "invite":
			what := "invite"
			typ, known := tokens.InviteTypeByCode(id.InviteCode)
			if known {
				what = "invite, " + typ.Name
			}
			line("  type", "%s (%s)", id.Type, what)
			line("  invite code", "%s", id.InviteCode)
			target := id.InviteTarget
			if known {
				target += " (" + typ.Target.String() + ")"
			}
			line("  target", "%s", target)
			if id.InviteParams != "" {
				line("  params", "%s", id.InviteParams)
			}
		}
		line("  token id", "%s", id.TokenID)
	}
	if len(rep.Caveats) == 0 {
		line("caveats", "none")
	} else {
		line("caveats", "%d", len(rep.Caveats))
	}
	for _, c := range rep.Caveats {
		fmt.Fprintf(w, "  %d. [%s] %s\n", c.Index, c.Kind, printable(c.Text))
		if c.Expires != "" {
			fmt.Fprintf(w, "     expires %s (%s)\n", c.Expires, relative(env.Now, c.Expires))
		}
		if c.Error != "" && c.Check == "" {
			fmt.Fprintf(w, "     not understood: %s\n", c.Error)
		}
		switch c.Check {
		case "ok":
			fmt.Fprintf(w, "     check: ok\n")
		case "fails":
			fmt.Fprintf(w, "     check: FAILS: %s\n", c.Reason)
		}
	}
	if rep.Expires != "" {
		line("expires", "%s (%s)", rep.Expires, relative(env.Now, rep.Expires))
	} else {
		line("expires", "never (no time caveat)")
	}
	sig := rep.Signature
	switch {
	case rep.Signature == "valid":
		sig += " (" + rep.Key + ")"
	case rep.SignatureNote != "":
		sig += " (" + rep.SignatureNote + ")"
	}
	line("signature", "%s", sig)
	if rep.Valid == nil {
		line("result", "not verified (give a key to verify: --key-env, --key-file, --key or $%s)", DefaultKeyEnv)
		return
	}
	if rep.CheckedAs != "" {
		ctx := []string{}
		if env.UserID != "" {
			ctx = append(ctx, "user "+env.UserID)
		}
		if env.ClientIP.IsValid() {
			ctx = append(ctx, "client "+env.ClientIP.String())
		}
		if rep.CheckedAs == "access" {
			ctx = append(ctx, "service "+env.Service)
		}
		ctx = append(ctx, "at "+env.Now.UTC().Format(time.RFC3339))
		line("checked as", "%s (%s)", rep.CheckedAs, strings.Join(ctx, ", "))
	}
	if *rep.Valid {
		line("result", "OK")
		return
	}
	if rep.FailedCaveat > 0 {
		line("result", "INVALID: %s (caveat %d)", rep.Error, rep.FailedCaveat)
		return
	}
	line("result", "INVALID: %s", rep.Error)
}

// relative says whether an RFC3339 time has passed, and how long ago or
// from now.
func relative(now time.Time, rfc string) string {
	t, err := time.Parse(time.RFC3339, rfc)
	if err != nil {
		return "?"
	}
	d := t.Sub(now).Truncate(time.Second)
	if d <= 0 {
		return "passed, " + span(-d) + " ago"
	}
	return "not passed, in " + span(d)
}

// span prints a duration; beyond two days in days and hours.
func span(d time.Duration) string {
	if d < 48*time.Hour {
		return d.String()
	}
	days, hours := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
	return fmt.Sprintf("%dd%dh", days, hours)
}

// printable quotes text that is not printable UTF-8 (identifiers and
// caveats are bytes).
func printable(s string) string {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}
