package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// --link prints <page>#<invite>, and the invite in the fragment is the
// token itself: it verifies with the key it was minted with.
func TestMintInviteLink(t *testing.T) {
	h := newHarness(t)
	h.env["K"] = testKey
	res := h.must(0, "mint", "invite", "--group", "g1", "--inviter", "bob", "--key-env", "K", "--link", "https://example.org/join")
	line := strings.TrimSuffix(res.stdout, "\n")
	page, tok, ok := strings.Cut(line, "#")
	if !ok || page != "https://example.org/join" || strings.ContainsAny(tok, "#\n /?") {
		t.Fatalf("link %q", res.stdout)
	}
	keys, err := tokens.NewKeyring([]byte(testKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := keys.Authenticate(tok)
	if err != nil || got.ID.Type.TargetID != "g1" || got.ID.Subject.ID != "bob" {
		t.Fatalf("token of the link: %+v %v", got, err)
	}

	res = h.must(0, "mint", "invite", "--group", "g1", "--inviter", "bob", "--key-env", "K", "--link", "http://127.0.0.1:8080/join", "--json")
	var out struct{ Token, Link string }
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Link != "http://127.0.0.1:8080/join#"+out.Token || out.Token == "" {
		t.Errorf("json link %q for token %q", out.Link, out.Token)
	}
}

func TestMintInviteLinkRefused(t *testing.T) {
	h := newHarness(t)
	h.env["K"] = testKey
	for _, link := range []string{"", "example.org/join", "/join", "ftp://example.org/join", "https://example.org/join#x", "https:///join", "https://exa mple.org/"} {
		res := h.must(ExitUsage, "mint", "invite", "--group", "g1", "--inviter", "bob", "--key-env", "K", "--link", link)
		if !strings.Contains(res.stderr, "--link") || res.stdout != "" {
			t.Errorf("--link %q: stderr %q stdout %q", link, res.stderr, res.stdout)
		}
	}
}
