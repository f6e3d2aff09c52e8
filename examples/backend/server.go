package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Headers set by the group_join edge. The edge removes any client-sent copy
// before setting them, so when a request arrives here they carry the edge's
// verdict: the invite was valid and the caller is X-User-Id.
const (
	hdrUserID     = "X-User-Id"
	hdrGroupID    = "X-Group-Id"
	hdrTokenID    = "X-Invite-Token-Id"
	hdrIssuer     = "X-Invite-Issuer"
	hdrInviteType = "X-Invite-Type"
	hdrEntityID   = "X-Join-Entity-Id"
	hdrTargetID   = "X-Join-Target-Id"
)

// Error codes, matching the {"error", "error_description"} body the edge
// passes through unchanged.
const (
	codeInvalidRequest   = "invalid_request"
	codeNotFound         = "not_found"
	codeForbidden        = "forbidden"
	codeAlreadyMember    = "already_member"
	codeMethodNotAllowed = "method_not_allowed"
	codeInternalError    = "internal_error"
)

const (
	descGroupNotFound = "Group not found."
	descSpaceNotFound = "Space not found."
	descAlreadyMember = "User is already a member of this group."
)

type server struct {
	db     *sql.DB
	logger *slog.Logger
	now    func() time.Time
}

// newServer returns the HTTP handler of the membership backend.
//
// TRUST MODEL: this backend performs no authentication of its own. It
// believes X-User-Id, X-Group-Id and X-Invite-Token-Id because the only
// client able to reach it is the group_join edge, which validated the invite
// token and the caller and set those headers itself. Anyone who can reach
// this listener directly can join any user to any group, so bind it to
// loopback or a private network that only the edge can reach.
func newServer(db *sql.DB, logger *slog.Logger) http.Handler {
	s := &server{db: db, logger: logger, now: time.Now}
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		// The same path without a method catches every other method, so a
		// known path answers 405 rather than falling through to the 404
		// catch-all below.
		mux.HandleFunc(path, methodNotAllowed(method))
	}
	route(http.MethodPost, "/user/groups/join", s.handleJoin)
	route(http.MethodPost, "/user/spaces/join", s.handleJoinSpace)
	route(http.MethodPost, "/groups/{group}/parents/join", s.handleJoinParent)
	route(http.MethodGet, "/spaces/{space}/members", s.handleListSpaceMembers)
	route(http.MethodGet, "/groups/{group}/parents", s.handleListParents)
	route(http.MethodPut, "/groups/{group}/members/{user}", s.handlePutMember)
	route(http.MethodGet, "/groups/{group}/members", s.handleListMembers)
	route(http.MethodGet, "/healthz", handleHealth)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, codeNotFound, "Resource not found.")
	})
	return s.logRequests(mux)
}

// handleJoin serves POST /user/groups/join, the Onedata endpoint fronted by
// the edge. The JSON body ({"token": "..."}) is forwarded by the edge but not
// needed here: the edge already validated the token and put its verdict in
// the headers, which this handler trusts (see newServer).
func (s *server) handleJoin(w http.ResponseWriter, r *http.Request) {
	userID, ok := singleHeader(w, r, hdrUserID)
	if !ok {
		return
	}
	groupID, ok := singleHeader(w, r, hdrGroupID)
	if !ok {
		return
	}
	tokenID := strings.TrimSpace(r.Header.Get(hdrTokenID))
	if !s.join(w, r, groupID, userID, tokenID) {
		return
	}
	// The edge turns any 2xx into 201 Created + Location.
	w.WriteHeader(http.StatusNoContent)
}

// edgeJoin reads what the edge verified for a join of type inviteType: the
// caller, the joined entity's id and the invite's id. It writes a 400 and
// reports false when a header is missing or names another invite type
// (the edge sends X-Invite-Type with every join; a request verified for
// another route must not be taken for this one).
func edgeJoin(w http.ResponseWriter, r *http.Request, inviteType string) (userID, targetID, tokenID string, ok bool) {
	typ, ok := singleHeader(w, r, hdrInviteType)
	if !ok {
		return "", "", "", false
	}
	if typ != inviteType {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "This route takes "+inviteType+" invites, not "+typ+".")
		return "", "", "", false
	}
	if userID, ok = singleHeader(w, r, hdrUserID); !ok {
		return "", "", "", false
	}
	if targetID, ok = singleHeader(w, r, hdrTargetID); !ok {
		return "", "", "", false
	}
	return userID, targetID, strings.TrimSpace(r.Header.Get(hdrTokenID)), true
}

// handleJoinSpace serves POST /user/spaces/join: the caller joins the
// space the invite names.
func (s *server) handleJoinSpace(w http.ResponseWriter, r *http.Request) {
	userID, spaceID, tokenID, ok := edgeJoin(w, r, "userJoinSpace")
	if !ok {
		return
	}
	err := addSpaceMember(r.Context(), s.db, spaceID, userID, tokenID, s.now())
	s.answerJoin(w, r, err, "space_id", spaceID, "user_id", userID, "token_id", tokenID)
}

// handleJoinParent serves POST /groups/{group}/parents/join: group
// {group} joins the group the invite names, on behalf of the caller, who
// must hold group_add_parent in {group}. The edge verified the invite and
// the caller; the privilege is this backend's to check, and so is whether
// the issuer may still invite (this example does not model inviters'
// privileges).
func (s *server) handleJoinParent(w http.ResponseWriter, r *http.Request) {
	userID, parentID, tokenID, ok := edgeJoin(w, r, "groupJoinGroup")
	if !ok {
		return
	}
	childID := r.PathValue("group")
	if entity, ok := singleHeader(w, r, hdrEntityID); !ok {
		return
	} else if entity != childID {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "The joining group in the path and X-Join-Entity-Id differ.")
		return
	}
	err := addParent(r.Context(), s.db, childID, parentID, userID, tokenID, s.now())
	s.answerJoin(w, r, err, "group_id", childID, "parent_id", parentID, "user_id", userID, "token_id", tokenID)
}

// answerJoin writes the answer of a space or parent join from its error.
func (s *server) answerJoin(w http.ResponseWriter, r *http.Request, err error, attrs ...any) {
	log := s.logger.With(append(attrs, "issuer", r.Header.Get(hdrIssuer))...)
	switch {
	case err == nil:
		log.Info("relation created")
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, errSpaceNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, descSpaceNotFound)
	case errors.Is(err, errGroupNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, descGroupNotFound)
	case errors.Is(err, errAlreadyMember):
		writeError(w, http.StatusConflict, codeAlreadyMember, "The relation already exists.")
	case errors.Is(err, errNoPrivilege):
		log.Info("join refused: privilege missing")
		writeError(w, http.StatusForbidden, codeForbidden, "You lack "+privAddParent+" in the joining group.")
	case errors.Is(err, errSelfJoin):
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "A group cannot join itself.")
	default:
		log.Error("join failed", "err", err)
		writeError(w, http.StatusInternalServerError, codeInternalError, "Internal server error.")
	}
}

// handleListSpaceMembers serves GET /spaces/{space}/members.
func (s *server) handleListSpaceMembers(w http.ResponseWriter, r *http.Request) {
	s.list(w, r, listSpaceMembers, r.PathValue("space"), descSpaceNotFound)
}

// handleListParents serves GET /groups/{group}/parents: the groups it
// joined.
func (s *server) handleListParents(w http.ResponseWriter, r *http.Request) {
	s.list(w, r, listParents, r.PathValue("group"), descGroupNotFound)
}

func (s *server) list(w http.ResponseWriter, r *http.Request, query func(context.Context, *sql.DB, string) ([]string, error), id, notFound string) {
	ids, err := query(r.Context(), s.db, id)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, ids)
	case errors.Is(err, errGroupNotFound), errors.Is(err, errSpaceNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, notFound)
	default:
		s.logger.Error("list failed", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, codeInternalError, "Internal server error.")
	}
}

// handlePutMember serves PUT /groups/{group}/members/{user}: the same join
// expressed as a REST resource, for deployments where the edge rewrites the
// Onedata request. The invite token id is mandatory here.
func (s *server) handlePutMember(w http.ResponseWriter, r *http.Request) {
	groupID, userID := r.PathValue("group"), r.PathValue("user")
	if strings.TrimSpace(groupID) == "" || strings.TrimSpace(userID) == "" {
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "Group and user ids must not be empty.")
		return
	}
	tokenID, ok := singleHeader(w, r, hdrTokenID)
	if !ok {
		return
	}
	if !s.join(w, r, groupID, userID, tokenID) {
		return
	}
	w.Header().Set("Location", "/groups/"+url.PathEscape(groupID)+"/members/"+url.PathEscape(userID))
	writeJSON(w, http.StatusCreated, map[string]string{"groupId": groupID, "userId": userID})
}

// join records the membership and, on failure, writes the error answer. It
// reports whether the caller should write the success answer.
func (s *server) join(w http.ResponseWriter, r *http.Request, groupID, userID, tokenID string) bool {
	err := addMember(r.Context(), s.db, groupID, userID, tokenID, s.now())
	log := s.logger.With("group_id", groupID, "user_id", userID, "token_id", tokenID,
		"issuer", r.Header.Get(hdrIssuer))
	switch {
	case err == nil:
		log.Info("membership created")
		return true
	case errors.Is(err, errGroupNotFound):
		log.Info("join refused: unknown group")
		writeError(w, http.StatusNotFound, codeNotFound, descGroupNotFound)
	case errors.Is(err, errAlreadyMember):
		log.Info("join refused: already a member")
		writeError(w, http.StatusConflict, codeAlreadyMember, descAlreadyMember)
	default:
		log.Error("join failed", "err", err)
		writeError(w, http.StatusInternalServerError, codeInternalError, "Internal server error.")
	}
	return false
}

// handleListMembers serves GET /groups/{group}/members: a JSON array of the
// members' user ids, sorted.
func (s *server) handleListMembers(w http.ResponseWriter, r *http.Request) {
	users, err := listMembers(r.Context(), s.db, r.PathValue("group"))
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, users)
	case errors.Is(err, errGroupNotFound):
		writeError(w, http.StatusNotFound, codeNotFound, descGroupNotFound)
	default:
		s.logger.Error("list members failed", "group_id", r.PathValue("group"), "err", err)
		writeError(w, http.StatusInternalServerError, codeInternalError, "Internal server error.")
	}
}

func handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok"))
}

func methodNotAllowed(allowed string) http.HandlerFunc {
	allow := allowed
	if allowed == http.MethodGet {
		allow = "GET, HEAD" // Go's "GET" patterns also match HEAD.
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "Method not allowed; use "+allowed+".")
	}
}

// singleHeader returns the one non-blank value of header name, or writes a
// 400 answer and returns false when it is missing, blank or repeated.
func singleHeader(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	values := r.Header.Values(name)
	switch {
	case len(values) == 0 || strings.TrimSpace(values[0]) == "":
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "Missing "+name+" header.")
		return "", false
	case len(values) > 1:
		writeError(w, http.StatusBadRequest, codeInvalidRequest, "Header "+name+" given more than once.")
		return "", false
	}
	return strings.TrimSpace(values[0]), true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, errorBody{Error: code, Description: description})
}

// statusRecorder remembers the status code written by a handler.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// logRequests logs one line per request. Bodies (which carry invite tokens)
// are never logged.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		s.logger.Info("request", "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}
