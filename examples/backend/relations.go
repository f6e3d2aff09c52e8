package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Spaces with their members, groups joining parent groups, and the group
// privileges the second needs: the two other joins this backend serves.

var (
	errSpaceNotFound = errors.New("space not found")
	errNoPrivilege   = errors.New("privilege missing")
	errSelfJoin      = errors.New("a group cannot join itself")
)

// privAddParent is Onezone's privilege for making a group join a parent.
const privAddParent = "group_add_parent"

const relationsSchema = `
CREATE TABLE IF NOT EXISTS spaces (
	id   TEXT NOT NULL PRIMARY KEY,
	name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS space_members (
	space_id  TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
	user_id   TEXT NOT NULL,
	joined_at TEXT NOT NULL,
	token_id  TEXT,
	PRIMARY KEY (space_id, user_id)
);
CREATE TABLE IF NOT EXISTS group_parents (
	child_id  TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
	parent_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
	joined_at TEXT NOT NULL,
	token_id  TEXT,
	PRIMARY KEY (child_id, parent_id),
	CHECK (child_id <> parent_id)
);
CREATE TABLE IF NOT EXISTS group_privileges (
	group_id  TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
	user_id   TEXT NOT NULL,
	privilege TEXT NOT NULL,
	PRIMARY KEY (group_id, user_id, privilege)
);
`

// ensureSpaces creates the given spaces if they are missing.
func ensureSpaces(ctx context.Context, db *sql.DB, ids []string) error {
	for _, id := range ids {
		if _, err := db.ExecContext(ctx,
			`INSERT INTO spaces (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, id, id); err != nil {
			return fmt.Errorf("create space %q: %w", id, err)
		}
	}
	return nil
}

// grant is one privilege of a user in a group: "<group>:<user>:<privilege>".
type grant struct{ group, user, privilege string }

// parseGrants parses a comma-separated list of grants.
func parseGrants(s string) ([]grant, error) {
	var out []grant
	for _, item := range parseGroups(s) {
		f := strings.Split(item, ":")
		if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] == "" {
			return nil, fmt.Errorf("privilege %q: want <group>:<user>:<privilege>", item)
		}
		out = append(out, grant{f[0], f[1], f[2]})
	}
	return out, nil
}

// ensureGrants records the grants; their groups must exist.
func ensureGrants(ctx context.Context, db *sql.DB, grants []grant) error {
	for _, g := range grants {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM groups WHERE id = ?`, g.group).Scan(&n); err != nil {
			return fmt.Errorf("grant %s to %s in %s: %w", g.privilege, g.user, g.group, err)
		}
		if n == 0 {
			return fmt.Errorf("privilege %s:%s:%s: no group %q (list it in -groups, or set -privileges to \"\")", g.group, g.user, g.privilege, g.group)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO group_privileges (group_id, user_id, privilege) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, g.group, g.user, g.privilege); err != nil {
			return fmt.Errorf("grant %s to %s in %s: %w", g.privilege, g.user, g.group, err)
		}
	}
	return nil
}

// addSpaceMember makes userID a member of spaceID, as addMember does for
// groups: one statement, the primary key deciding a race.
func addSpaceMember(ctx context.Context, db *sql.DB, spaceID, userID, tokenID string, now time.Time) error {
	res, err := db.ExecContext(ctx, `
		INSERT INTO space_members (space_id, user_id, joined_at, token_id)
		SELECT ?, ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM spaces WHERE id = ?)`,
		spaceID, userID, now.UTC().Format(time.RFC3339Nano), nullable(tokenID), spaceID)
	return insertResult(res, err, errSpaceNotFound)
}

// addParent makes group childID join parentID for userID, who must hold
// group_add_parent in childID: the privilege check and the insert are one
// statement, so a privilege revoked meanwhile is never half-seen.
func addParent(ctx context.Context, db *sql.DB, childID, parentID, userID, tokenID string, now time.Time) error {
	if childID == parentID {
		return errSelfJoin
	}
	var privileged, parents int
	err := db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM group_privileges WHERE group_id = ? AND user_id = ? AND privilege = ?),
		(SELECT COUNT(*) FROM groups WHERE id IN (?, ?))`,
		childID, userID, privAddParent, childID, parentID).Scan(&privileged, &parents)
	switch {
	case err != nil:
		return fmt.Errorf("check privilege: %w", err)
	case parents != 2:
		return errGroupNotFound
	case privileged == 0:
		return errNoPrivilege
	}
	res, err := db.ExecContext(ctx, `
		INSERT INTO group_parents (child_id, parent_id, joined_at, token_id)
		SELECT ?, ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM group_privileges WHERE group_id = ? AND user_id = ? AND privilege = ?)`,
		childID, parentID, now.UTC().Format(time.RFC3339Nano), nullable(tokenID), childID, userID, privAddParent)
	err = insertResult(res, err, errNoPrivilege)
	if errors.Is(err, errGroupNotFound) {
		return errGroupNotFound
	}
	return err
}

// listSpaceMembers returns the user ids of spaceID's members, sorted.
func listSpaceMembers(ctx context.Context, db *sql.DB, spaceID string) ([]string, error) {
	return listIDs(ctx, db, errSpaceNotFound, `
		SELECT m.user_id FROM spaces s LEFT JOIN space_members m ON m.space_id = s.id
		WHERE s.id = ? ORDER BY m.user_id`, spaceID)
}

// listParents returns the ids of the groups groupID has joined, sorted.
func listParents(ctx context.Context, db *sql.DB, groupID string) ([]string, error) {
	return listIDs(ctx, db, errGroupNotFound, `
		SELECT p.parent_id FROM groups g LEFT JOIN group_parents p ON p.child_id = g.id
		WHERE g.id = ? ORDER BY p.parent_id`, groupID)
}

// listIDs runs a query whose rows are one nullable id each, at least one
// row when the entity exists (a LEFT JOIN), and collects the ids.
func listIDs(ctx context.Context, db *sql.DB, notFound error, query string, arg string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query, arg)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	found := false
	ids := []string{}
	for rows.Next() {
		found = true
		var id sql.NullString
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list: %w", err)
		}
		if id.Valid {
			ids = append(ids, id.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if !found {
		return nil, notFound
	}
	return ids, nil
}

func nullable(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// insertResult maps an INSERT … WHERE EXISTS result: no row inserted is
// missing, a key conflict is errAlreadyMember, a foreign key
// errGroupNotFound.
func insertResult(res sql.Result, err error, missing error) error {
	if err != nil {
		var serr *sqlite.Error
		if errors.As(err, &serr) {
			switch serr.Code() {
			case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
				return errAlreadyMember
			case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
				return errGroupNotFound
			}
		}
		return fmt.Errorf("insert: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if n == 0 {
		return missing
	}
	return nil
}
