package tokens

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The table agrees with itself and with the identifier parser: every code
// and name is found both ways, every code parses in an identifier, and the
// twelve joins are the types a user or entity joins with.
func TestInviteTypes(t *testing.T) {
	joins := 0
	for _, typ := range InviteTypes() {
		if got, ok := InviteTypeByCode(typ.Code); !ok || got != typ {
			t.Errorf("by code %q: %+v %v", typ.Code, got, ok)
		}
		if got, ok := InviteTypeByName(typ.Name); !ok || got != typ {
			t.Errorf("by name %q: %+v %v", typ.Name, got, ok)
		}
		if name, ok := InviteTypeName(typ.Code); !ok || name != typ.Name {
			t.Errorf("InviteTypeName(%q) = %q", typ.Code, name)
		}
		id, err := ParseIdentifier(InviteIDOf(Persistence{Named: true}, typ, "bob", "x1", "t1").String())
		if err != nil || id.Type.Code != typ.Code || id.Type.TargetID != "x1" {
			t.Errorf("%s identifier: %+v %v", typ.Name, id, err)
		}
		if typ.Target.String() == "" || typ.Joiner.String() == "" {
			t.Errorf("%s: entity types %d %d have no name", typ.Name, typ.Joiner, typ.Target)
		}
		if typ.Join {
			joins++
			// Onezone's names say who joins what: userJoinGroup, …
			who, what, _ := strings.Cut(typ.Name, "Join")
			if !strings.EqualFold(strings.ReplaceAll(typ.Joiner.String(), "_", ""), who) ||
				!strings.EqualFold(strings.ReplaceAll(typ.Target.String(), "_", ""), what) {
				t.Errorf("%s: joiner %s, target %s", typ.Name, typ.Joiner, typ.Target)
			}
		}
	}
	if joins != 12 || len(InviteTypes()) != 14 {
		t.Errorf("%d joins of %d types, want 12 of 14", joins, len(InviteTypes()))
	}
	if _, ok := InviteTypeByCode("zzz"); ok {
		t.Error("unknown code found")
	}
	// The slice returned is a copy.
	InviteTypes()[0].Name = "changed"
	if UserJoinGroup.Name != "userJoinGroup" || InviteTypes()[0].Name != "userJoinGroup" {
		t.Error("InviteTypes shares the table")
	}
}

func authenticateID(t *testing.T, id Identifier, cavs ...string) *Token {
	t.Helper()
	s, err := Mint(testSecret, "", id, cavs...)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := NewKeyring(testSecret, nil)
	tok, err := keys.Authenticate(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// CheckJoin checks the type, the caveats, the consumer, then the
// self-join, in that order.
func TestCheckJoin(t *testing.T) {
	gjg, _ := InviteTypeByName("groupJoinGroup")
	ujs, _ := InviteTypeByName("userJoinSpace")
	env := &Env{Now: time.Now(), UserID: "alice"}
	p := Persistence{Named: true}
	expired := TimeCaveat(time.Now().Add(-time.Minute))
	rows := []struct {
		name   string
		tok    *Token
		typ    InviteType
		joiner Entity
		want   Kind
	}{
		{"group joins a group", authenticateID(t, InviteIDOf(p, gjg, "bob", "parent", "t")), gjg, Entity{EntityGroup, "child"}, 0},
		{"user joins a space", authenticateID(t, InviteIDOf(p, ujs, "bob", "s1", "t")), ujs, Entity{EntityUser, "alice"}, 0},
		{"wrong type", authenticateID(t, InviteIDOf(p, ujs, "bob", "s1", "t")), gjg, Entity{EntityGroup, "child"}, KindWrongType},
		{"an access token", authenticateID(t, AccessID(p, "alice", "", "t")), ujs, Entity{EntityUser, "alice"}, KindWrongType},
		{"self-join", authenticateID(t, InviteIDOf(p, gjg, "bob", "g1", "t")), gjg, Entity{EntityGroup, "g1"}, KindSelfJoin},
		{"same id, other type: no self-join", authenticateID(t, InviteIDOf(p, ujs, "bob", "alice", "t")), ujs, Entity{EntityUser, "alice"}, 0},
		{"no joiner named (preview)", authenticateID(t, InviteIDOf(p, gjg, "bob", "g1", "t")), gjg, Entity{}, 0},
		{"expired before self-join", authenticateID(t, InviteIDOf(p, gjg, "bob", "g1", "t"), expired), gjg, Entity{EntityGroup, "g1"}, KindExpired},
		{"consumer before self-join", authenticateID(t, InviteIDOf(p, gjg, "bob", "g1", "t"), "consumer = usr-carol"), gjg, Entity{EntityGroup, "g1"}, KindConsumer},
		{"consumer after other caveats", authenticateID(t, InviteIDOf(p, gjg, "bob", "g1", "t"), "consumer = usr-carol", expired), gjg, Entity{EntityGroup, "x"}, KindExpired},
		{"consumer matches", authenticateID(t, InviteIDOf(p, gjg, "bob", "g1", "t"), "consumer = usr-alice"), gjg, Entity{EntityGroup, "x"}, 0},
	}
	for _, r := range rows {
		err := r.tok.CheckJoin(r.typ, r.joiner, env)
		if KindOf(err) != r.want || (r.want == 0) != (err == nil) {
			t.Errorf("%s: %v, want kind %v", r.name, err, r.want)
		}
		if r.want == KindSelfJoin && !errors.Is(err, ErrSelfJoin) {
			t.Errorf("%s: %v is not ErrSelfJoin", r.name, err)
		}
	}
	// CheckInvite is CheckJoin for userJoinGroup by the caller.
	ujg := authenticateID(t, InviteID(p, "bob", "g1", "t"))
	if err := ujg.CheckInvite(env); err != nil {
		t.Errorf("CheckInvite: %v", err)
	}
	if err := authenticateID(t, InviteIDOf(p, gjg, "bob", "g1", "t")).CheckInvite(env); KindOf(err) != KindWrongType {
		t.Errorf("CheckInvite of a groupJoinGroup invite: %v", err)
	}
}

// An access token's api caveat allows the join of the entity type the
// request names (Env.JoinTarget; zero is a group join, as before).
func TestAPICaveatJoinTarget(t *testing.T) {
	rows := []struct {
		caveat string
		allows []EntityType
	}{
		{"api = ozw/create/group.*.join:*", []EntityType{EntityGroup}},
		{"api = ozw/create/space.*.join:*", []EntityType{EntitySpace}},
		{"api = all/all/*.*.*:*", []EntityType{EntityGroup, EntitySpace, EntityCluster, EntityHarvester, EntityAtmInventory}},
		{"api = ozw/create/atm_inventory.*.join:*|ozw/create/cluster.*.*:*", []EntityType{EntityAtmInventory, EntityCluster}},
		{"api = ozw/get/space.*.join:*", nil},
		{"api = opw/create/space.*.join:*", nil},
		{"api = ozw/create/space.*.instance:*", nil},
	}
	p := Persistence{Named: true}
	for _, r := range rows {
		tok := authenticateID(t, AccessID(p, "alice", "", "t"), r.caveat)
		for target := EntityGroup; target <= EntityAtmInventory; target++ {
			env := &Env{Now: time.Now(), Service: DefaultService, JoinTarget: target}
			want := false
			for _, a := range r.allows {
				want = want || a == target
			}
			if err := tok.CheckAccess(env); (err == nil) != want {
				t.Errorf("%q joining a %s: %v, want allowed %v", r.caveat, target, err, want)
			}
		}
		// Zero is a group join.
		err := tok.CheckAccess(&Env{Now: time.Now(), Service: DefaultService})
		groupOK := tok.CheckAccess(&Env{Now: time.Now(), Service: DefaultService, JoinTarget: EntityGroup}) == nil
		if (err == nil) != groupOK {
			t.Errorf("%q: zero JoinTarget %v, group %v", r.caveat, err, groupOK)
		}
	}
}
