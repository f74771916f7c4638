package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// blocksRender writes err the way a handler would and returns the response.
func blocksRender(err error) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	writeError(rec, err)
	return rec
}

// blocksCheck compares status and the exact body bytes; the contract's
// clients see these bytes, so no normalisation is applied.
func blocksCheck(t *testing.T, name string, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("%s: status = %d, want %d (body %s)", name, rec.Code, status, rec.Body.String())
	}
	if got := rec.Body.String(); got != body {
		t.Errorf("%s: body = %s, want %s", name, got, body)
	}
	if body != "" {
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type = %q, want %q", name, ct, "application/json")
		}
	}
}

func TestWriteJSON(t *testing.T) {
	tests := []struct {
		name   string
		status int
		v      any
		want   int
		body   string
	}{
		{"object", http.StatusOK, map[string]any{"b": 1, "a": "x"}, http.StatusOK, `{"a":"x","b":1}`},
		{"no html escaping", http.StatusCreated, map[string]string{"u": "http://h/?a=1&b=<2>"}, http.StatusCreated, `{"u":"http://h/?a=1&b=<2>"}`},
		{"unicode kept", http.StatusOK, []string{"héllo", "日本"}, http.StatusOK, `["héllo","日本"]`},
		{"null", http.StatusOK, nil, http.StatusOK, `null`},
		{"unencodable becomes 500", http.StatusOK, math.Inf(1), http.StatusInternalServerError,
			`{"detail":"internal error: json: unsupported value: +Inf"}`},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		writeJSON(rec, tc.status, tc.v)
		blocksCheck(t, tc.name, rec, tc.want, tc.body)
		if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(len(tc.body)) {
			t.Errorf("%s: Content-Length = %q, want %d", tc.name, cl, len(tc.body))
		}
	}
}

func TestWriteJSONNoContent(t *testing.T) {
	for _, status := range []int{http.StatusNoContent, http.StatusNotModified} {
		rec := httptest.NewRecorder()
		writeJSON(rec, status, map[string]int{"a": 1})
		if rec.Code != status || rec.Body.Len() != 0 {
			t.Errorf("status %d: got %d with body %q, want %d with no body", status, rec.Code, rec.Body.String(), status)
		}
	}
}

func TestWriteDetail(t *testing.T) {
	rec := httptest.NewRecorder()
	writeDetail(rec, http.StatusNotFound, `Say "hi" & <go>`)
	blocksCheck(t, "detail", rec, http.StatusNotFound, `{"detail":"Say \"hi\" & <go>"}`)
}

func TestFieldErrors(t *testing.T) {
	fe := fieldErrors{}
	fe.add("endpoint", "This field is required.")
	fe.add("endpoint", "second")
	fe.add(nonFieldErrorsKey, "object-level")
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusBadRequest, fe)
	blocksCheck(t, "fieldErrors", rec, http.StatusBadRequest,
		`{"endpoint":["This field is required.","second"],"non_field_errors":["object-level"]}`)
}

func TestOrderedObject(t *testing.T) {
	nested := newObject().set("z", 1).set("a", []int{1, 2})
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"insertion order", newObject().set("url", "u").set("id", "i").set("frequency", nil).set("cron_definition", "25 * * * *"),
			`{"url":"u","id":"i","frequency":null,"cron_definition":"25 * * * *"}`},
		{"replace keeps position", newObject().set("b", 1).set("a", 2).set("b", 3), `{"b":3,"a":2}`},
		{"empty", newObject(), `{}`},
		{"zero value", orderedObject{}, `{}`},
		{"nested pointer", newObject().set("y", nested).set("x", 0), `{"y":{"z":1,"a":[1,2]},"x":0}`},
		{"stored by value in a slice", []any{*nested}, `[{"z":1,"a":[1,2]}]`},
		{"nil pointer", (*orderedObject)(nil), `null`},
		{"no html escaping inside", newObject().set("<k>", "a&b"), `{"<k>":"a&b"}`},
		{"raw message kept", newObject().set("payload", json.RawMessage(`{"n":1.50}`)), `{"payload":{"n":1.50}}`},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		writeJSON(rec, http.StatusOK, tc.v)
		blocksCheck(t, tc.name, rec, http.StatusOK, tc.want)
	}
}

func TestOrderedObjectError(t *testing.T) {
	_, err := json.Marshal(newObject().set("ok", 1).set("bad", math.NaN()))
	if err == nil {
		t.Fatalf("Marshal with NaN: err = nil, want an error")
	}
}

func TestWriteError(t *testing.T) {
	fe := fieldErrors{}
	fe.add("page_size", "A valid integer is required.")
	tests := []struct {
		name   string
		err    error
		status int
		body   string
		header map[string]string
	}{
		{"detail", &apiError{Status: http.StatusConflict, Detail: "busy"}, http.StatusConflict, `{"detail":"busy"}`, nil},
		{"fields", &apiError{Status: http.StatusBadRequest, Fields: fe}, http.StatusBadRequest,
			`{"page_size":["A valid integer is required."]}`, nil},
		{"fields without status default to 400", &apiError{Fields: fe}, http.StatusBadRequest,
			`{"page_size":["A valid integer is required."]}`, nil},
		{"headers copied", &apiError{Status: http.StatusServiceUnavailable, Detail: "no leader", Header: http.Header{"Retry-After": {"1"}}},
			http.StatusServiceUnavailable, `{"detail":"no leader"}`, map[string]string{"Retry-After": "1"}},
		{"wrapped apiError", fmt.Errorf("forwarding: %w", errNotFound()), http.StatusNotFound, `{"detail":"Not found."}`, nil},
		{"plain error", errors.New("boom"), http.StatusInternalServerError, `{"detail":"internal error: boom"}`, nil},
		{"401 always challenges", &apiError{Status: http.StatusUnauthorized, Detail: "x"}, http.StatusUnauthorized, `{"detail":"x"}`,
			map[string]string{"WWW-Authenticate": `Basic realm="api"`}},
	}
	for _, tc := range tests {
		rec := blocksRender(tc.err)
		blocksCheck(t, tc.name, rec, tc.status, tc.body)
		for k, v := range tc.header {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("%s: header %s = %q, want %q", tc.name, k, got, v)
			}
		}
	}
}

func TestAPIErrorMessage(t *testing.T) {
	tests := []struct {
		err  *apiError
		want string
	}{
		{&apiError{Status: 404, Detail: "Not found."}, "404 Not found."},
		{&apiError{Fields: fieldErrors{"a": {"m"}}}, "400 map[a:[m]]"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
