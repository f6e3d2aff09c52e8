package tokens

// EntityType is a kind of Onezone entity that takes part in a join: the one
// that joins (a user, a group, a space, a harvester) and the one joined.
// String gives Onezone's serialized name of the type (ctool gri.erl,
// serialize_type), the name api caveats use.
type EntityType uint8

// Entity types. The zero value is no type.
const (
	EntityUser EntityType = iota + 1
	EntityGroup
	EntitySpace
	EntityCluster
	EntityHarvester
	EntityAtmInventory
	EntityProvider
)

var entityNames = [...]string{
	EntityUser:         "user",
	EntityGroup:        "group",
	EntitySpace:        "space",
	EntityCluster:      "cluster",
	EntityHarvester:    "harvester",
	EntityAtmInventory: "atm_inventory",
	EntityProvider:     "provider",
}

func (t EntityType) String() string {
	if int(t) < len(entityNames) && t != 0 {
		return entityNames[t]
	}
	return ""
}

// Entity names one party of a join.
type Entity struct {
	Type EntityType
	ID   string
}

// InviteType is one of Onezone's invite token types (ctool token_type.erl):
// its short form in identifiers, its name, the JSON key of its target, and
// the types of the entity that joins and of the one it joins.
type InviteType struct {
	Code      string     // in identifiers: "ujg"
	Name      string     // in JSON and the API: "userJoinGroup"
	TargetKey string     // JSON key of the target id: "groupId"
	Joiner    EntityType // who joins: user, group, space, harvester (a provider for the two that are no join)
	Target    EntityType // what the invite's target id names
	// Join is false for supportSpace and registerOneprovider: they are
	// consumed by a provider with a body of their own, not by a join.
	Join bool
}

// inviteTypes lists every invite type Onezone defines, in token_type.erl's
// order.
var inviteTypes = [...]InviteType{
	{"ujg", "userJoinGroup", "groupId", EntityUser, EntityGroup, true},
	{"gjg", "groupJoinGroup", "groupId", EntityGroup, EntityGroup, true},
	{"ujs", "userJoinSpace", "spaceId", EntityUser, EntitySpace, true},
	{"gjs", "groupJoinSpace", "spaceId", EntityGroup, EntitySpace, true},
	{"ssp", "supportSpace", "spaceId", EntityProvider, EntitySpace, false},
	{"hjs", "harvesterJoinSpace", "spaceId", EntityHarvester, EntitySpace, true},
	{"rop", "registerOneprovider", "adminUserId", EntityProvider, EntityUser, false},
	{"ujc", "userJoinCluster", "clusterId", EntityUser, EntityCluster, true},
	{"gjc", "groupJoinCluster", "clusterId", EntityGroup, EntityCluster, true},
	{"ujh", "userJoinHarvester", "harvesterId", EntityUser, EntityHarvester, true},
	{"gjh", "groupJoinHarvester", "harvesterId", EntityGroup, EntityHarvester, true},
	{"sjh", "spaceJoinHarvester", "harvesterId", EntitySpace, EntityHarvester, true},
	{"uji", "userJoinAtmInventory", "atmInventoryId", EntityUser, EntityAtmInventory, true},
	{"gji", "groupJoinAtmInventory", "atmInventoryId", EntityGroup, EntityAtmInventory, true},
}

// UserJoinGroup is the invite type of POST /user/groups/join.
var UserJoinGroup = inviteTypes[0]

// InviteTypes returns every invite type Onezone defines.
func InviteTypes() []InviteType {
	out := inviteTypes
	return out[:]
}

// InviteTypeByCode returns the invite type of an identifier's short form
// ("ujg"); ok is false for a code Onezone does not define.
func InviteTypeByCode(code string) (InviteType, bool) {
	for _, t := range &inviteTypes {
		if t.Code == code {
			return t, true
		}
	}
	return InviteType{}, false
}

// InviteTypeByName returns the invite type named name ("userJoinGroup").
func InviteTypeByName(name string) (InviteType, bool) {
	for _, t := range &inviteTypes {
		if t.Name == name {
			return t, true
		}
	}
	return InviteType{}, false
}

// InviteTypeName returns Onezone's name of an invite code ("ujg" →
// "userJoinGroup"); ok is false for a code Onezone does not define.
func InviteTypeName(code string) (name string, ok bool) {
	t, ok := InviteTypeByCode(code)
	return t.Name, ok
}

// CheckJoin checks t as an invite of type typ, presented by env.UserID
// (the consumer, always a user) for joiner to join the invite's target.
// In order: the type, every caveat but the consumer caveats, the consumer
// caveats (KindConsumer: they need an otherwise valid invite), then that
// joiner is not the target itself (KindSelfJoin). A zero joiner skips the
// last check, for a preview that names no joiner.
//
// What CheckJoin cannot know is left to whoever performs the join: that
// the caller may act for joiner (a privilege in a group, say), that the
// invite's issuer may still invite, and that joiner is not a member
// already.
func (t *Token) CheckJoin(typ InviteType, joiner Entity, env *Env) error {
	if t.ID.Legacy || t.ID.Type.Kind != TypeInvite || t.ID.Type.Code != typ.Code {
		return &Error{Kind: KindWrongType, Detail: "not a " + typ.Name + " invite"}
	}
	consumers := false
	for i := range t.Caveats {
		c := &t.Caveats[i]
		if c.Kind == CaveatConsumer {
			consumers = true
			continue
		}
		if err := c.Check(PurposeInvite, env); err != nil {
			return err
		}
	}
	if consumers {
		for i := range t.Caveats {
			if c := &t.Caveats[i]; c.Kind == CaveatConsumer {
				if err := c.Check(PurposeInvite, env); err != nil {
					return err
				}
			}
		}
	}
	if joiner.Type == typ.Target && joiner.ID == t.ID.Type.TargetID {
		return &Error{Kind: KindSelfJoin, Detail: "the invite's target is the joining " + joiner.Type.String()}
	}
	return nil
}
