package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddy-groupjoin/caddy-groupjoin/tokens"
)

// The two helper servers run as child processes of edgebench (the same
// binary, another subcommand), so that their CPU time is their own and
// Caddy's /proc figures hold only Caddy. Each listens on a free loopback
// port and prints "LISTEN <addr>" as its first line.

// serveBackend is the fast membership backend: it reads the body and
// answers 204, as a backend that admitted the user would.
func serveBackend() error {
	return listenAndServe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
}

// serveAuth is the external validation endpoint of setup (c), what a user
// would put behind forward_auth: it verifies the caller's access token with
// the same tokens package and the same key, and answers 200 with
// X-User-Id, or 401. forward_auth sends no body, so it cannot see the
// invite: setup (c) validates less than group_join does.
func serveAuth() error {
	keys, err := tokens.NewKeyring([]byte(os.Getenv(secretEnv)), nil)
	if err != nil {
		return err
	}
	v := &tokens.Verifier{Keys: keys}
	return listenAndServe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := r.Header.Get("X-Auth-Token")
		if raw == "" {
			raw, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		// forward_auth tells the client's address in X-Forwarded-For.
		ip, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ",")
		tok, err := v.VerifyAccess(raw, v.Env(time.Now(), strings.TrimSpace(ip), ""))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-User-Id", tok.ID.Subject.ID)
		w.WriteHeader(http.StatusOK)
	}))
}

func listenAndServe(h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	return srv.Serve(ln)
}
