package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"

	"github.com/seedscheduler/schedulerd/fsm"
)

// The admin write routes live under /api/v1/admin/ because /api/v1/user/ and
// /api/v1/group/ are the contract's read-only, any-user resources: a path
// has one resource, so mixing admin writes into them would weaken either
// their permission or the contract's 405s.
const (
	adminUsersPath       = "/api/v1/admin/users/"
	adminTokenRevokePath = "/api/v1/admin/tokens/revoke/"
	adminGroupsPath      = "/api/v1/admin/groups/"
	adminGroupUsersPath  = "/api/v1/admin/groups/{id}/users/"
)

// Django's limits for auth.User.username and auth.Group.name, so that users
// and groups stay representable by Seed clients written against the
// original service.
const (
	uaMaxUsernameLen  = 150
	uaMaxGroupNameLen = 150
	// bcrypt ignores everything after 72 bytes; refusing longer passwords
	// beats silently accepting a prefix as the password.
	uaMaxPasswordBytes = 72
)

// uaUsernameRE is Django's UnicodeUsernameValidator (Python's \w is
// Unicode-aware; RE2's is not).
var uaUsernameRE = regexp.MustCompile(`^[\p{L}\p{N}_.@+-]+$`)

// userAdminRoutes registers the routes of this file.
func (s *Server) userAdminRoutes(handle func(path string, res resource)) {
	handle(adminUsersPath, resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"POST": s.onLeader(s.adminCreateUser)}})
	handle(adminTokenRevokePath, resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"POST": s.onLeader(s.adminRevokeToken)}})
	handle(adminGroupsPath, resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"POST": s.onLeader(s.adminCreateGroup)}})
	handle(adminGroupUsersPath, resource{auth: authAdmin, methods: map[string]http.HandlerFunc{"POST": s.onLeader(s.adminAddToGroup)}})
}

// adminCreateUser: POST /api/v1/admin/users/
// {"email", "username"?, "is_admin"?, "password"?} → 201 with the user item.
func (s *Server) adminCreateUser(w http.ResponseWriter, r *http.Request) {
	body, err := decodeBody(r, false)
	if err != nil {
		writeError(w, err)
		return
	}
	fe := fieldErrors{}
	email := strings.TrimSpace(requiredString(fe, body, "email"))
	if email != "" && !validEmail(email) {
		fe.add("email", "Enter a valid email address.")
	}
	username := email
	if raw, ok := body["username"]; ok && string(raw) != "null" {
		username = strings.TrimSpace(requiredString(fe, body, "username"))
		switch {
		case username == "":
		case utf8.RuneCountInString(username) > uaMaxUsernameLen:
			fe.add("username", "Ensure this field has no more than "+strconv.Itoa(uaMaxUsernameLen)+" characters.")
		case !uaUsernameRE.MatchString(username):
			fe.add("username", "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.")
		}
	} else if utf8.RuneCountInString(username) > uaMaxUsernameLen {
		// The default username is the email, which may be longer than a
		// username can be.
		fe.add("username", "Ensure this field has no more than "+strconv.Itoa(uaMaxUsernameLen)+" characters.")
	}
	isAdmin := false
	if raw, ok := body["is_admin"]; ok {
		if err := json.Unmarshal(raw, &isAdmin); err != nil || string(raw) == "null" {
			fe.add("is_admin", "Must be a valid boolean.")
		}
	}
	var password string
	if raw, ok := body["password"]; ok && string(raw) != "null" {
		// No trimming: spaces at either end are part of the password.
		if err := json.Unmarshal(raw, &password); err != nil {
			fe.add("password", "Not a valid string.")
		} else if password == "" {
			fe.add("password", "This field may not be blank.")
		} else if len(password) > uaMaxPasswordBytes {
			fe.add("password", "Ensure this field has no more than "+strconv.Itoa(uaMaxPasswordBytes)+" bytes.")
		}
	}
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}

	var hash string
	if password != "" {
		// Hashed here, on the leader, so that only the hash enters the raft
		// log, snapshots and every follower's disk.
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			writeError(w, errors.New("hash password: "+err.Error()))
			return
		}
		hash = string(h)
	}
	u := fsm.User{Username: username, Email: email, IsAdmin: isAdmin, CreatedAt: time.Now().UTC()}
	id, ok := s.applyCreate(w, r, fsm.CmdCreateUser, fsm.CreateUserCmd{Username: u.Username, Email: u.Email,
		IsAdmin: u.IsAdmin, PasswordHash: hash, At: u.CreatedAt}, "username", "A user with that username already exists.")
	if !ok {
		return
	}
	u.ID = id
	w.Header().Set("Location", absURL(r, userPath(id)))
	writeJSON(w, http.StatusCreated, s.renderUser(r, u).set("is_admin", u.IsAdmin))
}

// adminRevokeToken: POST /api/v1/admin/tokens/revoke/ {"token"} → 204.
// The key travels in the body, not the path, so that it stays out of access
// logs and proxies' URL records.
func (s *Server) adminRevokeToken(w http.ResponseWriter, r *http.Request) {
	body, err := decodeBody(r, false)
	if err != nil {
		writeError(w, err)
		return
	}
	fe := fieldErrors{}
	key := strings.TrimSpace(requiredString(fe, body, "token"))
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}
	d := sha256.Sum256([]byte(key))
	if _, err := s.apply(w, r, fsm.CmdRevokeToken, fsm.RevokeTokenCmd{TokenDigest: d[:]}); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// adminCreateGroup: POST /api/v1/admin/groups/ {"name"} → 201 {"url", "name"}.
func (s *Server) adminCreateGroup(w http.ResponseWriter, r *http.Request) {
	body, err := decodeBody(r, false)
	if err != nil {
		writeError(w, err)
		return
	}
	fe := fieldErrors{}
	name := strings.TrimSpace(requiredString(fe, body, "name"))
	if utf8.RuneCountInString(name) > uaMaxGroupNameLen {
		fe.add("name", "Ensure this field has no more than "+strconv.Itoa(uaMaxGroupNameLen)+" characters.")
	}
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}
	id, ok := s.applyCreate(w, r, fsm.CmdCreateGroup, fsm.CreateGroupCmd{Name: name}, "name", "group with this name already exists.")
	if !ok {
		return
	}
	w.Header().Set("Location", absURL(r, groupPath(id)))
	writeJSON(w, http.StatusCreated, renderGroup(r, fsm.Group{ID: id, Name: name}))
}

// adminAddToGroup: POST /api/v1/admin/groups/{id}/users/ {"user_id"} → 204.
// Adding a member twice is not an error, so scripts can be re-run.
func (s *Server) adminAddToGroup(w http.ResponseWriter, r *http.Request) {
	groupID, ok := pathID(r, "id")
	if !ok {
		writeError(w, errNotFound())
		return
	}
	body, err := decodeBody(r, false)
	if err != nil {
		writeError(w, err)
		return
	}
	fe := fieldErrors{}
	var userID uint64
	raw, present := body["user_id"]
	switch {
	case !present:
		fe.add("user_id", "This field is required.")
	case string(raw) == "null":
		fe.add("user_id", "This field may not be null.")
	default:
		// A JSON integer only: ids are integers, and accepting "5" or 5.0
		// would only hide a client bug.
		i, err := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
		if err != nil {
			fe.add("user_id", "A valid integer is required.")
		} else if i < 1 {
			fe.add("user_id", "Ensure this value is greater than or equal to 1.")
		} else {
			userID = uint64(i)
		}
	}
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}
	_, err = s.apply(w, r, fsm.CmdAddToGroup, fsm.AddToGroupCmd{UserID: userID, GroupID: groupID})
	if errors.Is(err, fsm.ErrNotFound) {
		writeError(w, s.uaAddToGroupNotFound(groupID, userID))
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// uaAddToGroupNotFound says which of the two ids is unknown: a bare
// "Not found." on a path that exists would send an operator looking at the
// group when the user id was wrong. Users and groups are never deleted, so
// reading after the failed apply gives the same answer the apply saw.
func (s *Server) uaAddToGroupNotFound(groupID, userID uint64) error {
	var groupErr error
	err := s.node.FSM().View(func(tx *bolt.Tx) error {
		_, groupErr = fsm.GetGroup(tx, groupID)
		return nil
	})
	if err != nil {
		return err
	}
	if groupErr != nil {
		return errNotFound()
	}
	return &apiError{Status: http.StatusNotFound, Detail: "User " + strconv.FormatUint(userID, 10) + " not found."}
}

// applyCreate applies a command that creates a row and answers with its
// integer id; a name conflict becomes a 409 on field. ok is false when an
// error was written.
func (s *Server) applyCreate(w http.ResponseWriter, r *http.Request, t fsm.CommandType, payload any, field, conflict string) (uint64, bool) {
	resp, err := s.apply(w, r, t, payload)
	if errors.Is(err, fsm.ErrConflict) {
		writeError(w, &apiError{Status: http.StatusConflict, Fields: fieldErrors{field: {conflict}}})
		return 0, false
	}
	if err != nil {
		writeError(w, err)
		return 0, false
	}
	id, ok := resp.(uint64)
	if !ok {
		writeError(w, fmt.Errorf("command %d: unexpected state machine response %T", t, resp))
		return 0, false
	}
	return id, true
}
