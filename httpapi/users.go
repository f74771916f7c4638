package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

// writeTimeout bounds a write on the leader: queueing, commit and apply.
const writeTimeout = 10 * time.Second

// NewToken returns a key as the contract defines it (40 lowercase hex
// characters from 20 random bytes) and the digest that is stored.
func NewToken() (key string, digest []byte) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err)) // crypto/rand does not fail on Linux
	}
	key = hex.EncodeToString(b[:])
	d := sha256.Sum256([]byte(key))
	return key, d[:]
}

// apply commits a command on the leader and records its index on the
// response.
func (s *Server) apply(w http.ResponseWriter, r *http.Request, t fsm.CommandType, payload any) (any, error) {
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	resp, idx, err := s.node.ApplyCommand(ctx, t, payload)
	applied(w, idx)
	return resp, err
}

// stringField reads an optional string field: ok is false when the field
// is missing or null.
func stringField(body map[string]json.RawMessage, name string) (v string, present, ok bool) {
	raw, present := body[name]
	if !present || string(raw) == "null" {
		return "", present, false
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", true, false
	}
	return v, true, true
}

// requiredString validates a required string field with DRF's messages.
func requiredString(fe fieldErrors, body map[string]json.RawMessage, name string) string {
	raw, present := body[name]
	switch {
	case !present:
		fe.add(name, "This field is required.")
	case string(raw) == "null":
		fe.add(name, "This field may not be null.")
	default:
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			fe.add(name, "Not a valid string.")
		} else if strings.TrimSpace(v) == "" {
			fe.add(name, "This field may not be blank.")
		} else {
			return v
		}
	}
	return ""
}

// emailRE follows Django's EmailValidator closely enough for API users.
var emailRE = regexp.MustCompile(`(?i)^[-!#$%&'*+/=?^_` + "`" + `{}|~0-9a-z]+(\.[-!#$%&'*+/=?^_` + "`" + `{}|~0-9a-z]+)*@(localhost|([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{1,62}[a-z0-9])$`)

func validEmail(s string) bool { return len(s) <= 254 && emailRE.MatchString(s) }

// issueToken: POST /api/v1/user/token/ {"email"} → 201 {"token"}.
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	body, err := decodeBody(r, true)
	if err != nil {
		writeError(w, err)
		return
	}
	fe := fieldErrors{}
	email, present, ok := stringField(body, "email")
	switch {
	case !present || !ok && string(body["email"]) == "null":
		fe.add("email", "This field is required.")
	case !ok:
		fe.add("email", "Enter a valid email address.")
	case strings.TrimSpace(email) == "":
		fe.add("email", "This field may not be blank.")
	case !validEmail(strings.TrimSpace(email)):
		fe.add("email", "Enter a valid email address.")
	}
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}
	email = strings.TrimSpace(email)
	key, digest := NewToken()
	if _, err := s.apply(w, r, fsm.CmdIssueToken, fsm.IssueTokenCmd{Username: email, Email: email, TokenDigest: digest, At: time.Now().UTC()}); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, newObject().set("token", key))
}

// tokenAuth: POST /api/token-auth/ {"username", "password"} → 200 {"token"}.
// It issues a new token: stored tokens are hashed, so an old one cannot be
// returned.
func (s *Server) tokenAuth(w http.ResponseWriter, r *http.Request) {
	body, err := decodeBody(r, true)
	if err != nil {
		writeError(w, err)
		return
	}
	fe := fieldErrors{}
	username := requiredString(fe, body, "username")
	password := requiredString(fe, body, "password")
	if len(fe) > 0 {
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}
	p, ok, err := fsmAuth{s.node.FSM()}.PasswordUser(username, password)
	if err != nil {
		writeError(w, err)
		return
	}
	if !ok {
		fe.add(nonFieldErrorsKey, "Unable to log in with provided credentials.")
		writeError(w, &apiError{Status: http.StatusBadRequest, Fields: fe})
		return
	}
	key, digest := NewToken()
	if _, err := s.apply(w, r, fsm.CmdIssueToken, fsm.IssueTokenCmd{Username: p.Username, TokenDigest: digest, At: time.Now().UTC()}); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, newObject().set("token", key))
}

func userPath(id uint64) string  { return "/api/v1/user/" + strconv.FormatUint(id, 10) + "/" }
func groupPath(id uint64) string { return "/api/v1/group/" + strconv.FormatUint(id, 10) + "/" }

func (s *Server) renderUser(r *http.Request, u fsm.User) *orderedObject {
	groups := make([]string, 0, len(u.Groups))
	for _, g := range u.Groups {
		groups = append(groups, absURL(r, groupPath(g)))
	}
	return newObject().set("url", absURL(r, userPath(u.ID))).set("username", u.Username).
		set("email", u.Email).set("groups", groups)
}

func renderGroup(r *http.Request, g fsm.Group) *orderedObject {
	return newObject().set("url", absURL(r, groupPath(g.ID))).set("name", g.Name)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	s.listTable(w, r, fsm.BUsers, func(_ []byte, v []byte) (any, error) {
		u, err := fsm.DecodeUser(v)
		return s.renderUser(r, u), err
	})
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	s.listTable(w, r, fsm.BGroups, func(_ []byte, v []byte) (any, error) {
		var g fsm.Group
		err := json.Unmarshal(v, &g)
		return renderGroup(r, g), err
	})
}

// pathID parses an integer id from the route; a bad id is a 404, as the
// contract says.
func pathID(r *http.Request, name string) (uint64, bool) {
	id, err := strconv.ParseUint(mux.Vars(r)[name], 10, 64)
	return id, err == nil && id > 0
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r, "id")
	if !ok {
		writeError(w, errNotFound())
		return
	}
	var u fsm.User
	err := s.node.FSM().View(func(tx *bolt.Tx) (err error) {
		u, err = fsm.GetUser(tx, id)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.renderUser(r, u))
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r, "id")
	if !ok {
		writeError(w, errNotFound())
		return
	}
	var g fsm.Group
	err := s.node.FSM().View(func(tx *bolt.Tx) (err error) {
		g, err = fsm.GetGroup(tx, id)
		return err
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, renderGroup(r, g))
}

// listTable serves one cursor-paginated page of a table in descending key
// order, with the maintained row count.
func (s *Server) listTable(w http.ResponseWriter, r *http.Request, table []byte, render func(k, v []byte) (any, error)) {
	s.servePage(w, r, func(tx *bolt.Tx, pos []byte, reverse bool, size int) (page, error) {
		p := fsm.Page(tx, table, pos, reverse, size)
		out := page{positions: p.Keys, hasBefore: p.HasBefore, hasAfter: p.HasAfter, count: fsm.Count(tx, table)}
		for i := range p.Keys {
			item, err := render(p.Keys[i], p.Values[i])
			if err != nil {
				return out, err
			}
			out.items = append(out.items, item)
		}
		return out, nil
	})
}
