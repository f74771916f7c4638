package httpapi

import (
	"encoding/base64"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Principal is the authenticated caller.
type Principal struct {
	UserID   uint64
	Username string
	IsAdmin  bool
}

// Authenticator resolves credentials against the replicated state.
type Authenticator interface {
	// TokenUser returns the user owning the 40-hex key, ok=false when unknown.
	TokenUser(key string) (p Principal, ok bool, err error)
	// PasswordUser checks username/password (bcrypt happens behind it), ok=false when bad.
	PasswordUser(username, password string) (p Principal, ok bool, err error)
}

// basicChallenge is the challenge of Django REST framework's first
// configured authenticator (Basic) in the original service.
const basicChallenge = `Basic realm="api"`

// authenticate reads the Authorization header the way DRF's Basic and Token
// authenticators do: a header with another keyword (e.g. Bearer) or none at
// all is no credentials (nil, nil), so that the route's permission decides
// between 401 and anonymous access; a recognised but bad header is always a
// 401. The key and password never appear in any error.
func authenticate(r *http.Request, a Authenticator) (*Principal, error) {
	parts := splitASCIISpace(r.Header.Get("Authorization"))
	if len(parts) == 0 {
		return nil, nil
	}
	switch strings.ToLower(parts[0]) {
	case "token":
		return authenticateToken(parts, a)
	case "basic":
		return authenticateBasic(parts, a)
	}
	return nil, nil
}

func authenticateToken(parts []string, a Authenticator) (*Principal, error) {
	switch {
	case len(parts) == 1:
		return nil, errAuthenticationFailed("Invalid token header. No credentials provided.")
	case len(parts) > 2:
		return nil, errAuthenticationFailed("Invalid token header. Token string should not contain spaces.")
	}
	p, ok, err := a.TokenUser(parts[1])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errAuthenticationFailed("Invalid token.")
	}
	return &p, nil
}

func authenticateBasic(parts []string, a Authenticator) (*Principal, error) {
	switch {
	case len(parts) == 1:
		return nil, errAuthenticationFailed("Invalid basic header. No credentials provided.")
	case len(parts) > 2:
		return nil, errAuthenticationFailed("Invalid basic header. Credentials string should not contain spaces.")
	}
	bad := errAuthenticationFailed("Invalid username/password.")
	decoded, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, bad
	}
	creds := string(decoded)
	if !utf8.ValidString(creds) {
		// DRF falls back to Latin-1 when the credentials are not UTF-8.
		creds = latin1ToUTF8(decoded)
	}
	username, password, found := strings.Cut(creds, ":")
	if !found {
		return nil, bad
	}
	p, ok, err := a.PasswordUser(username, password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, bad
	}
	return &p, nil
}

// splitASCIISpace splits like Python's bytes.split(): on runs of ASCII
// whitespace only, which is how DRF tokenises the header.
func splitASCIISpace(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			return true
		}
		return false
	})
}

func latin1ToUTF8(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

func basicChallengeHeader() http.Header {
	return http.Header{"Www-Authenticate": {basicChallenge}}
}

func errAuthenticationFailed(detail string) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Detail: detail, Header: basicChallengeHeader()}
}

func errNotAuthenticated() *apiError {
	return errAuthenticationFailed("Authentication credentials were not provided.")
}

func errForbidden() *apiError {
	return &apiError{Status: http.StatusForbidden, Detail: "You do not have permission to perform this action."}
}

func errNotFound() *apiError {
	return &apiError{Status: http.StatusNotFound, Detail: "Not found."}
}
