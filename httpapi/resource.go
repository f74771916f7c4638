package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"
)

type authLevel int

const (
	authNone authLevel = iota
	authUser
	authAdmin
)

// resource is one path of the API: authentication and permission are
// checked before the method, as the contract (and DRF) require, so an
// anonymous PUT on a GET-only route is a 401, not a 405.
type resource struct {
	auth    authLevel
	methods map[string]http.HandlerFunc // "GET", "POST", ...
}

type principalCtxKey struct{}

// principalFrom returns the caller stored by resource.handler; nil on
// authNone routes, which do not look at credentials at all.
func principalFrom(r *http.Request) *Principal {
	p, _ := r.Context().Value(principalCtxKey{}).(*Principal)
	return p
}

// handler serves the resource. authNone routes (probes, metrics, token-auth)
// skip authentication entirely: a stale or malformed header from a load
// balancer or a login form must not turn into a 401 there.
//
// settle makes this node catch up with the writes it has answered: before a
// read (GET, HEAD), which is served from the local state, and before a
// refusal, which may only mean that the token or the permission was granted
// by a write this node answered but has not applied yet.
func (res resource) handler(a Authenticator, settle func(*http.Request)) http.Handler {
	allow := res.allowHeader()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if res.auth != authNone {
			read := r.Method == http.MethodGet || r.Method == http.MethodHead
			if read {
				settle(r)
			}
			p, err := res.authorize(r, a)
			if err != nil && !read {
				settle(r)
				p, err = res.authorize(r, a)
			}
			if err != nil {
				writeError(w, err)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), principalCtxKey{}, p))
		}

		if h, ok := res.methods[r.Method]; ok && h != nil {
			h(w, r)
			return
		}
		switch r.Method {
		case http.MethodHead:
			if h := res.methods[http.MethodGet]; h != nil {
				// net/http drops the body of a HEAD response and keeps the headers.
				h(w, r)
				return
			}
		case http.MethodOptions:
			w.Header().Set("Allow", allow)
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Allow", allow)
		writeDetail(w, http.StatusMethodNotAllowed, fmt.Sprintf("Method \"%s\" not allowed.", r.Method))
	})
}

// authorize authenticates the caller and checks the resource's level.
func (res resource) authorize(r *http.Request, a Authenticator) (*Principal, error) {
	p, err := authenticate(r, a)
	switch {
	case err != nil:
		return nil, err
	case p == nil:
		return nil, errNotAuthenticated()
	case res.auth == authAdmin && !p.IsAdmin:
		return nil, errForbidden()
	}
	return p, nil
}

// allowHeader lists the methods the resource answers: its own, OPTIONS, and
// HEAD when GET exists.
func (res resource) allowHeader() string {
	ms := []string{http.MethodOptions}
	for m, h := range res.methods {
		if h != nil {
			ms = append(ms, m)
		}
	}
	if res.methods[http.MethodGet] != nil {
		ms = append(ms, http.MethodHead)
	}
	slices.Sort(ms)
	return strings.Join(slices.Compact(ms), ", ")
}

// newRouter returns a router whose every answer is JSON: unknown paths are
// 404 {"detail": "Not found."}. Routes must be registered with a trailing
// slash, and the router served behind withTrailingSlash so that "/x" and
// "/x/" reach the same route without a redirect. Paths are not cleaned
// either: mux would answer an unclean path with a body-less 301, which
// clients posting JSON cannot follow.
func newRouter() *mux.Router {
	rt := mux.NewRouter()
	rt.SkipClean(true)
	rt.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errNotFound())
	})
	// Only reached if a route is registered with .Methods(); resource does
	// its own dispatch, but the answer must still be JSON.
	rt.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeDetail(w, http.StatusMethodNotAllowed, fmt.Sprintf("Method \"%s\" not allowed.", r.Method))
	})
	return rt
}

// withTrailingSlash appends the slash the routes are registered with before
// h routes the request, keeping RawPath (when set) the escaped form of Path.
func withTrailingSlash(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/") && !strings.HasSuffix(p, "/") {
			u := *r.URL
			u.Path = p + "/"
			if u.RawPath != "" {
				u.RawPath += "/"
			}
			r2 := new(http.Request)
			*r2 = *r
			r2.URL = &u
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}
