package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors returned by the store; the HTTP layer maps them to status codes.
var (
	errGroupNotFound = errors.New("group not found")
	errAlreadyMember = errors.New("already a member")
)

const schema = `
CREATE TABLE IF NOT EXISTS groups (
	id   TEXT NOT NULL PRIMARY KEY,
	name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships (
	group_id  TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
	user_id   TEXT NOT NULL,
	joined_at TEXT NOT NULL,
	token_id  TEXT,
	PRIMARY KEY (group_id, user_id)
);
`

// isMemoryDSN reports whether dsn names an in-memory SQLite database.
func isMemoryDSN(dsn string) bool {
	return dsn == "" || strings.Contains(dsn, ":memory:") || strings.Contains(dsn, "mode=memory")
}

// openDB opens the SQLite database named by dsn (a file path, a "file:" URI,
// or ":memory:") with the pure-Go modernc.org/sqlite driver.
//
// An in-memory database lives only as long as the connection that created
// it, and every new connection of a pool would see a different, empty
// database (or, with cache=shared, fight over table locks). In-memory
// databases are therefore served by exactly one connection that is never
// closed. File databases use WAL and a busy timeout so that concurrent
// writers wait for each other instead of failing.
func openDB(dsn string) (*sql.DB, error) {
	memory := isMemoryDSN(dsn)
	if dsn == "" {
		dsn = ":memory:"
	}
	params := "_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)"
	if !memory {
		params += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	db, err := sql.Open("sqlite", dsn+sep+params)
	if err != nil {
		return nil, err
	}
	if memory {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	} else {
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// initSchema creates the tables if they do not exist yet.
func initSchema(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, schema+relationsSchema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// ensureGroups creates the given groups if they are missing; existing groups
// (and their members) are left alone. The group name defaults to its id.
func ensureGroups(ctx context.Context, db *sql.DB, ids []string) error {
	for _, id := range ids {
		if _, err := db.ExecContext(ctx,
			`INSERT INTO groups (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, id, id); err != nil {
			return fmt.Errorf("create group %q: %w", id, err)
		}
	}
	return nil
}

// addMember makes userID a member of groupID in a single statement, so that
// two concurrent joins cannot both succeed: the memberships primary key
// rejects the second INSERT and that rejection is reported as
// errAlreadyMember. The group's existence is checked by the same statement
// (INSERT ... SELECT ... WHERE EXISTS), and the foreign key backs it up.
// An empty tokenID is stored as NULL.
func addMember(ctx context.Context, db *sql.DB, groupID, userID, tokenID string, now time.Time) error {
	res, err := db.ExecContext(ctx, `
		INSERT INTO memberships (group_id, user_id, joined_at, token_id)
		SELECT ?, ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM groups WHERE id = ?)`,
		groupID, userID, now.UTC().Format(time.RFC3339Nano), nullable(tokenID), groupID)
	return insertResult(res, err, errGroupNotFound)
}

// listMembers returns the user ids of groupID's members, sorted, or
// errGroupNotFound. One query answers both questions, so the result is
// consistent even while members are being added.
func listMembers(ctx context.Context, db *sql.DB, groupID string) ([]string, error) {
	return listIDs(ctx, db, errGroupNotFound, `
		SELECT m.user_id
		FROM groups g LEFT JOIN memberships m ON m.group_id = g.id
		WHERE g.id = ?
		ORDER BY m.user_id`, groupID)
}
