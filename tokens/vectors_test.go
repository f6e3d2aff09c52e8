package tokens

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"
)

// The vectors are Onedata's own compatibility tokens (a copy of
// shared/reference/onedata-token-vectors.json).
type vector struct {
	Name       string   `json:"name"`
	Secret     string   `json:"secret"`
	Token      string   `json:"token"`
	Location   string   `json:"location"`
	Identifier string   `json:"identifier"`
	Caveats    []string `json:"caveats"`
	Valid      *bool    `json:"signature_valid"`
	Decodable  *bool    `json:"decodable"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/onedata-token-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Vectors []vector }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Vectors) < 6 {
		t.Fatalf("expected at least 6 vectors, got %d", len(doc.Vectors))
	}
	return doc.Vectors
}

func TestOnedataVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			m, err := Decode(v.Token)
			if v.Decodable != nil && !*v.Decodable {
				if err == nil || KindOf(err) != KindMalformed {
					t.Fatalf("want malformed, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got := string(m.Id()); got != v.Identifier {
				t.Errorf("identifier %q, want %q", got, v.Identifier)
			}
			if v.Location != "" && m.Location() != v.Location {
				t.Errorf("location %q, want %q", m.Location(), v.Location)
			}
			var cavs []string
			for _, c := range m.Caveats() {
				cavs = append(cavs, string(c.Id))
				if _, err := ParseCaveat(string(c.Id)); err != nil {
					t.Errorf("caveat %q does not parse: %v", c.Id, err)
				}
			}
			if len(cavs) != len(v.Caveats) {
				t.Fatalf("caveats %q, want %q", cavs, v.Caveats)
			}
			for i := range cavs {
				if cavs[i] != v.Caveats[i] {
					t.Errorf("caveat %d %q, want %q", i, cavs[i], v.Caveats[i])
				}
			}
			id, err := ParseIdentifier(v.Identifier)
			if err != nil {
				t.Fatalf("identifier: %v", err)
			}
			if id.String() != v.Identifier {
				t.Errorf("identifier round trip %q", id.String())
			}
			if v.Secret == "" {
				// No secret published: any key must refuse it.
				k, _ := NewKeyring([]byte("some other key"), nil)
				if _, err := k.Authenticate(v.Token); !errors.Is(err, ErrSignature) {
					t.Errorf("want signature error, got %v", err)
				}
				return
			}
			// go-macaroon agrees with the published secret...
			if err := m.Verify([]byte(v.Secret), func(string) error { return nil }, nil); err != nil {
				t.Fatalf("go-macaroon verify: %v", err)
			}
			// ...and so does our chain, with the key the identifier selects.
			gens := map[uint64][]byte{}
			if !id.Persistence.Named {
				gens[id.Persistence.Generation] = []byte(v.Secret)
			}
			def := []byte(v.Secret)
			if !id.Persistence.Named {
				def = []byte("default is not used for tmp tokens once generations exist")
			}
			k, err := NewKeyring(def, gens)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := k.Authenticate(v.Token)
			if err != nil {
				t.Fatalf("authenticate: %v", err)
			}
			wrong, _ := NewKeyring([]byte(v.Secret+"x"), nil)
			if _, err := wrong.Authenticate(v.Token); !errors.Is(err, ErrSignature) {
				t.Errorf("wrong key: want signature error, got %v", err)
			}
			// None of Onedata's vectors is a user-join-group invite, and the
			// access token carries caveats refused at this edge.
			env := &Env{Now: time.Now(), UserID: "user-id", Service: DefaultService}
			switch id.Type.Kind {
			case TypeInvite:
				if err := tok.CheckInvite(env); !errors.Is(err, ErrWrongType) {
					t.Errorf("invite check: want wrong type, got %v", err)
				}
			case TypeAccess:
				if err := tok.CheckAccess(env); err == nil {
					t.Errorf("access token with data/consumer caveats accepted")
				}
			}
		})
	}
}

// The repaired example token of the API page is a legacy token whose time
// caveat expired in 2017: it decodes, but is never an invite.
func TestAPIPageExample(t *testing.T) {
	var repaired vector
	for _, v := range loadVectors(t) {
		if v.Identifier == "8HfHARHgklqBkZVI4l6MBTvSSvt98ppp6948s8Q7SOk" {
			repaired = v
		}
	}
	m, err := Decode(repaired.Token)
	if err != nil {
		t.Fatal(err)
	}
	tok := &Token{ID: Identifier{Legacy: true, Raw: string(m.Id())}}
	if err := tok.CheckInvite(&Env{Now: time.Now()}); !errors.Is(err, ErrWrongType) {
		t.Fatalf("legacy token as invite: %v", err)
	}
	if err := tok.CheckAccess(&Env{Now: time.Now()}); !errors.Is(err, ErrWrongType) {
		t.Fatalf("legacy token as access token: %v", err)
	}
}

// Our signature chain must agree with go-macaroon's on tokens of every
// shape.
func TestSignatureMatchesGoMacaroon(t *testing.T) {
	for n := 0; n < 12; n++ {
		secret := []byte(NewTokenID()[:n+1])
		id := InviteID(Persistence{Named: true}, "bob", "g1", NewTokenID())
		var cavs []string
		for i := 0; i < n; i++ {
			cavs = append(cavs, TimeCaveat(time.Now().Add(time.Duration(i+1)*time.Hour)))
		}
		m, err := MintMacaroon(secret, "", id, cavs...)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Verify(secret, func(string) error { return nil }, nil); err != nil {
			t.Fatalf("go-macaroon: %v", err)
		}
		if !signatureValid(m, deriveKey(secret)) {
			t.Fatalf("%d caveats: our chain disagrees with go-macaroon", n)
		}
		if signatureValid(m, deriveKey(append(secret, 'x'))) {
			t.Fatalf("%d caveats: wrong key accepted", n)
		}
	}
}
