package tokens

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// identifierStrings are the string fields of id.
func identifierStrings(id *Identifier) []string {
	return []string{id.Raw, id.Subject.Kind, id.Subject.ID, id.Type.SessionID, id.Type.Code,
		id.Type.TargetID, id.Type.Params, id.TokenID}
}

// within reports whether s lies in the memory of t.
func within(s, t string) bool {
	if s == "" {
		return true
	}
	p, q := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(t)))
	return p >= q && p+uintptr(len(s)) <= q+uintptr(len(t))
}

// An identifier parsed from a view of a buffer and rebased onto a copy
// equals the one parsed from the copy, points into the copy (or at
// constants), and keeps its value when the buffer is overwritten.
func TestIdentifierRebased(t *testing.T) {
	for _, s := range []string{
		"2/nmd/usr-bob/ujg:grp1:/tok",
		"2/tmp-0/usr-bob/ujg:grp1:/tok",
		"2/tmp-18446744073709551615/prv-p1/act/tok",
		"2/nmd/nobody/idn/tok",
		"2/nmd/usr-u/act:sess-1/tok",
		"2/nmd/usr-u/ujs:space:priv,x/tok",
		"legacyIdentifierABC",
	} {
		buf := []byte(s)
		view := unsafe.String(unsafe.SliceData(buf), len(buf))
		id, err := ParseIdentifier(view)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		owned := strings.Clone(s)
		got := id.rebased(view, owned)
		for i := range buf {
			buf[i] = '#'
		}
		want, _ := ParseIdentifier(owned)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: rebased %+v, parsed from the copy %+v", s, got, want)
		}
		for _, f := range identifierStrings(&got) {
			if f != "" && within(f, view) {
				t.Errorf("%q: field %q still points into the buffer", s, f)
			}
			if !within(f, owned) && f != "nobody" {
				t.Errorf("%q: field %q points neither into the copy nor at a constant", s, f)
			}
		}
	}
}

// A Token keeps its identifier when the pooled decoding buffer it was
// read from is reused by the tokens authenticated after it, forged ones
// (refused before anything is copied) and valid ones alike.
func TestAuthenticateIdentifierOwnsItsBytes(t *testing.T) {
	secret := []byte("identifier test secret")
	k, err := NewKeyring(secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(secret []byte, inviter, group string) string {
		s, err := Mint(secret, "", InviteID(Persistence{Named: true}, inviter, group, NewTokenID()), "time < 9999999999")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := mint(secret, "alice", "group-one")
	tok, err := k.Authenticate(first)
	if err != nil {
		t.Fatal(err)
	}
	want := tok.ID.String()
	for i := range 50 {
		other := mint(secret, "bobby", "group-two")
		if i%2 == 0 {
			other = mint([]byte("another secret"), "bobby", "group-two")
		}
		_, _ = k.Authenticate(other)
	}
	if got := tok.ID.String(); got != want || tok.ID.Subject.ID != "alice" || tok.ID.Type.TargetID != "group-one" {
		t.Fatalf("identifier changed under the token: %q, was %q", got, want)
	}
}

// rebased rewrites the eight strings an Identifier has; a new string
// field must be added there, or it would keep pointing into the buffer.
func TestIdentifierStringFields(t *testing.T) {
	var count func(reflect.Type) int
	count = func(ty reflect.Type) int {
		switch ty.Kind() {
		case reflect.String:
			return 1
		case reflect.Struct:
			n := 0
			for i := range ty.NumField() {
				n += count(ty.Field(i).Type)
			}
			return n
		}
		return 0
	}
	var id Identifier
	if n, listed := count(reflect.TypeOf(id)), len(identifierStrings(&id)); n != listed {
		t.Fatalf("Identifier has %d string fields, rebased and this test know %d", n, listed)
	}
}
