package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

const maxBodyBytes = 1 << 20

// apiError is the single error type handlers return for anything the client
// should see; writeError turns it into the contract's body so that handlers
// never hand-write error responses.
type apiError struct {
	Status int
	Detail string
	// Fields, when non-nil, replaces the {"detail": ...} body with a
	// validation body.
	Fields fieldErrors
	// Header is copied onto the response (e.g. WWW-Authenticate).
	Header http.Header
}

func (e *apiError) Error() string {
	if e.Fields != nil {
		return fmt.Sprintf("%d %v", e.status(), map[string][]string(e.Fields))
	}
	return fmt.Sprintf("%d %s", e.status(), e.Detail)
}

func (e *apiError) status() int {
	switch {
	case e.Status != 0:
		return e.Status
	case e.Fields != nil:
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// writeError writes err. An *apiError anywhere in the chain (handlers may
// wrap it) is written as is; anything else is a bug or an infrastructure
// failure and becomes a 500.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) || ae == nil {
		ae = mapError(err)
	}
	status := ae.status()
	h := w.Header()
	for k, vs := range ae.Header {
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	// The contract requires the challenge on every 401, whoever built it.
	if status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", basicChallenge)
	}
	if ae.Fields != nil {
		writeJSON(w, status, ae.Fields)
		return
	}
	writeDetail(w, status, ae.Detail)
}

// decodeBody reads a JSON (or, with allowForm, form-encoded) request body
// into a map of raw values. Values stay json.RawMessage so that numbers keep
// their exact text and each handler decides how strict a field is; form
// values are turned into JSON strings so callers see a single representation.
//
// The checks follow Django REST framework's order: an empty body is an empty
// object whatever its Content-Type (DRF never invokes a parser for it), then
// the media type (415), the size (413), the syntax (400) and finally the top
// level type (400 non_field_errors).
func decodeBody(r *http.Request, allowForm bool) (map[string]json.RawMessage, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return map[string]json.RawMessage{}, nil
	}
	var body []byte
	if r.ContentLength <= maxBodyBytes {
		// One byte more than allowed tells "exactly 1 MiB" from "too big"
		// when the length is not declared.
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, errBodyTooLarge()
			}
			return nil, &apiError{Status: http.StatusBadRequest, Detail: "Malformed request."}
		}
		if len(b) == 0 {
			return map[string]json.RawMessage{}, nil
		}
		body = b
	}

	mediaType := requestMediaType(r)
	isJSON := strings.EqualFold(mediaType, "application/json")
	isForm := allowForm && strings.EqualFold(mediaType, "application/x-www-form-urlencoded")
	if !isJSON && !isForm {
		return nil, &apiError{
			Status: http.StatusUnsupportedMediaType,
			Detail: fmt.Sprintf("Unsupported media type \"%s\" in request.", mediaType),
		}
	}
	// A declared length over the limit is refused without reading the body.
	if body == nil || len(body) > maxBodyBytes {
		return nil, errBodyTooLarge()
	}

	if isForm {
		return decodeFormBody(body)
	}
	return decodeJSONBody(body)
}

func errBodyTooLarge() *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Detail: "Request body exceeds 1 MiB."}
}

// requestMediaType is the Content-Type as the client sent it, minus
// parameters, so that the 415 message echoes what the client chose.
func requestMediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

func decodeJSONBody(body []byte) (map[string]json.RawMessage, error) {
	// Raw values are kept verbatim, so invalid UTF-8 would otherwise reach
	// storage; Python's decoder rejects it as well.
	if !utf8.Valid(body) {
		return nil, errJSONParse("invalid UTF-8 in request body")
	}
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errJSONParse(strings.TrimPrefix(err.Error(), "json: "))
	}
	if kind := pyTypeName(raw); kind != "dict" {
		fe := fieldErrors{}
		fe.add(nonFieldErrorsKey, "Invalid data. Expected a dictionary, but got "+kind+".")
		return nil, &apiError{Status: http.StatusBadRequest, Fields: fe}
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errJSONParse(strings.TrimPrefix(err.Error(), "json: "))
	}
	return m, nil
}

func errJSONParse(reason string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Detail: "JSON parse error - " + reason}
}

// pyTypeName names a valid JSON value's type the way Python does, since
// DRF's message is built from type(data).__name__.
func pyTypeName(raw json.RawMessage) string {
	v := bytes.TrimLeft(raw, " \t\r\n")
	if len(v) == 0 {
		return "NoneType"
	}
	switch v[0] {
	case '{':
		return "dict"
	case '[':
		return "list"
	case '"':
		return "str"
	case 't', 'f':
		return "bool"
	case 'n':
		return "NoneType"
	}
	if bytes.ContainsAny(v, ".eE") {
		return "float"
	}
	return "int"
}

// decodeFormBody follows Django's QueryDict: a key given several times yields
// its last value, which is what DRF fields read.
func decodeFormBody(body []byte) (map[string]json.RawMessage, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Detail: "Form parse error - " + err.Error()}
	}
	m := make(map[string]json.RawMessage, len(values))
	for k, vs := range values {
		if len(vs) == 0 {
			continue
		}
		// Marshal replaces invalid UTF-8 with U+FFFD, as Django's decoding
		// of form data does, so the result is always valid JSON.
		b, err := json.Marshal(vs[len(vs)-1])
		if err != nil {
			return nil, err
		}
		m[k] = b
	}
	return m, nil
}
