// Command backend is a small example membership backend for the group_join
// Caddy plugin. It is meant to sit behind the edge: the edge validates the
// invite token and the caller, then forwards POST /user/groups/join,
// /user/spaces/join and /groups/{id}/parents/join here with X-User-Id,
// X-Invite-Type, X-Join-* and X-Invite-* set.
//
// This backend trusts those headers and does no authentication of its own,
// so only the edge may be able to reach it: bind it to loopback or a private
// network. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const (
	defaultListen     = "127.0.0.1:8081"
	defaultDB         = ":memory:"
	defaultGroups     = "developers,operators"
	defaultSpaces     = "datasets"
	defaultPrivileges = "operators:alice:group_add_parent"

	envListen     = "MEMBERSHIP_LISTEN"
	envDB         = "MEMBERSHIP_DB"
	envGroups     = "MEMBERSHIP_GROUPS"
	envSpaces     = "MEMBERSHIP_SPACES"
	envPrivileges = "MEMBERSHIP_PRIVILEGES"

	shutdownTimeout = 10 * time.Second
)

type config struct {
	listen     string
	db         string
	groups     []string
	spaces     []string
	privileges []grant
}

// parseConfig reads the flags; each flag falls back to an environment
// variable, then to its default. A flag given on the command line wins.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	orDefault := func(env, def string) string {
		if v, ok := lookup(getenv, env); ok {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(output)
	listen := fs.String("listen", orDefault(envListen, defaultListen),
		"address to listen on, host:port (env "+envListen+"); keep it on loopback or a private network")
	db := fs.String("db", orDefault(envDB, defaultDB),
		"SQLite database: a file path, a file: URI, or :memory: (env "+envDB+")")
	groups := fs.String("groups", orDefault(envGroups, defaultGroups),
		"comma-separated group ids created at start if missing (env "+envGroups+")")
	spaces := fs.String("spaces", orDefault(envSpaces, defaultSpaces),
		"comma-separated space ids created at start if missing (env "+envSpaces+")")
	privileges := fs.String("privileges", orDefault(envPrivileges, defaultPrivileges),
		"comma-separated <group>:<user>:<privilege> granted at start, e.g. operators:alice:group_add_parent (env "+envPrivileges+")")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	grants, err := parseGrants(*privileges)
	if err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if strings.TrimSpace(*listen) == "" {
		return config{}, errors.New("-listen must not be empty")
	}
	return config{listen: *listen, db: *db, groups: parseGroups(*groups), spaces: parseGroups(*spaces), privileges: grants}, nil
}

// lookup returns the value of env if it is set and not blank.
func lookup(getenv func(string) string, env string) (string, bool) {
	v := strings.TrimSpace(getenv(env))
	return v, v != ""
}

// parseGroups splits a comma-separated list, trimming blanks and dropping
// empty entries and duplicates.
func parseGroups(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, g := range strings.Split(s, ",") {
		g = strings.TrimSpace(g)
		if g == "" || seen[g] {
			continue
		}
		seen[g] = true
		out = append(out, g)
	}
	return out
}

// run starts the backend and serves until ctx is cancelled, then shuts down
// gracefully. It prints one line with the listen address to stdout once the
// listener is open; logs go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	db, err := openDB(cfg.db)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	if err := initSchema(ctx, db); err != nil {
		return err
	}
	if err := ensureGroups(ctx, db, cfg.groups); err != nil {
		return err
	}
	if err := ensureSpaces(ctx, db, cfg.spaces); err != nil {
		return err
	}
	if err := ensureGrants(ctx, db, cfg.privileges); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newServer(db, logger),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("starting", "addr", ln.Addr().String(), "db", cfg.db, "groups", cfg.groups, "spaces", cfg.spaces)
	fmt.Fprintf(stdout, "membership backend listening on http://%s\n", ln.Addr())

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "backend:", err)
		stop()
		os.Exit(1)
	}
}
