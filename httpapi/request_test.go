package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// blocksBodyRequest builds a POST with body and Content-Type (none when ct
// is empty).
func blocksBodyRequest(body, ct string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/schedule/", strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r
}

// blocksUnreadable fails the test if decodeBody reads a body it should
// refuse from its declared length alone.
type blocksUnreadable struct{ t *testing.T }

func (u blocksUnreadable) Read([]byte) (int, error) {
	u.t.Errorf("body was read although Content-Length exceeds the limit")
	return 0, io.EOF
}

func blocksOneMiBJSON() string {
	const prefix, suffix = `{"a":"`, `"}`
	return prefix + strings.Repeat("x", maxBodyBytes-len(prefix)-len(suffix)) + suffix
}

func TestDecodeBodyErrors(t *testing.T) {
	tests := []struct {
		name      string
		body, ct  string
		allowForm bool
		status    int
		want      string
	}{
		{"text/plain", "hello", "text/plain", false, 415, `{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"media type echoed as sent, without parameters", "hello", "Text/Plain ; charset=utf-8", false, 415,
			`{"detail":"Unsupported media type \"Text/Plain\" in request."}`},
		{"body without Content-Type", `{"a":1}`, "", false, 415, `{"detail":"Unsupported media type \"\" in request."}`},
		{"form where only JSON is accepted", "a=1", "application/x-www-form-urlencoded", false, 415,
			`{"detail":"Unsupported media type \"application/x-www-form-urlencoded\" in request."}`},
		{"multipart refused even with forms", "x", "multipart/form-data; boundary=x", true, 415,
			`{"detail":"Unsupported media type \"multipart/form-data\" in request."}`},
		{"media type checked before size", strings.Repeat("x", maxBodyBytes+1), "text/plain", false, 415,
			`{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"one byte over 1 MiB", blocksOneMiBJSON() + " ", "application/json", false, 413, `{"detail":"Request body exceeds 1 MiB."}`},
		{"truncated JSON", `{"a":`, "application/json", false, 400, `{"detail":"JSON parse error - unexpected end of JSON input"}`},
		{"single quotes", `{'a':1}`, "application/json", false, 400,
			`{"detail":"JSON parse error - invalid character '\\'' looking for beginning of object key string"}`},
		{"trailing data", `{} x`, "application/json", false, 400,
			`{"detail":"JSON parse error - invalid character 'x' after top-level value"}`},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "application/json", false, 400, `{"detail":"JSON parse error - invalid UTF-8 in request body"}`},
		{"list", `[{"a":1}]`, "application/json", false, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"string", `"abc"`, "application/json", false, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got str."]}`},
		{"int", ` -12 `, "application/json", false, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got int."]}`},
		{"float", `1.5`, "application/json", false, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got float."]}`},
		{"float exponent", `1E3`, "application/json", false, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got float."]}`},
		{"bool", `false`, "application/json", false, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got bool."]}`},
		{"null", `null`, "application/json", false, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got NoneType."]}`},
		{"bad form escape", "email=%zz", "application/x-www-form-urlencoded", true, 400,
			`{"detail":"Form parse error - invalid URL escape \"%zz\""}`},
	}
	for _, tc := range tests {
		got, err := decodeBody(blocksBodyRequest(tc.body, tc.ct), tc.allowForm)
		if err == nil {
			t.Errorf("%s: decodeBody = %v, nil; want error %d %s", tc.name, got, tc.status, tc.want)
			continue
		}
		blocksCheck(t, tc.name, blocksRender(err), tc.status, tc.want)
	}
}

func TestDecodeBodyOK(t *testing.T) {
	tests := []struct {
		name      string
		body, ct  string
		allowForm bool
		want      map[string]string // key → raw JSON
	}{
		{"empty body, no Content-Type", "", "", false, map[string]string{}},
		{"empty body, JSON", "", "application/json", false, map[string]string{}},
		{"empty body, any media type", "", "text/plain", false, map[string]string{}},
		{"object", `{"endpoint":"http://x/","enabled":true}`, "application/json", false,
			map[string]string{"endpoint": `"http://x/"`, "enabled": `true`}},
		{"parameters and case ignored", `{"a":1}`, "Application/JSON; charset=utf-8", false, map[string]string{"a": `1`}},
		{"numbers kept verbatim", `{"n": 1.000000000000000000001, "big": 123456789012345678901234567890}`, "application/json", false,
			map[string]string{"n": `1.000000000000000000001`, "big": `123456789012345678901234567890`}},
		{"nested kept raw", `{"payload": {"x": [1, 2]}}`, "application/json", false, map[string]string{"payload": `{"x": [1, 2]}`}},
		{"duplicate key: last wins", `{"a":1,"a":2}`, "application/json", false, map[string]string{"a": `2`}},
		{"JSON accepted where forms are", `{"email":"bob@example.org"}`, "application/json", true,
			map[string]string{"email": `"bob@example.org"`}},
		{"form", "email=bob%40example.org&name=a+b&n=5", "application/x-www-form-urlencoded", true,
			map[string]string{"email": `"bob@example.org"`, "name": `"a b"`, "n": `"5"`}},
		{"form repeated key: last wins", "x=1&x=2", "application/x-www-form-urlencoded; charset=utf-8", true,
			map[string]string{"x": `"2"`}},
		{"form empty value", "password=", "application/x-www-form-urlencoded", true, map[string]string{"password": `""`}},
		{"form HTML characters", "p=%3Ca%26b%3E", "application/x-www-form-urlencoded", true, map[string]string{"p": `"\u003ca\u0026b\u003e"`}},
		{"form invalid UTF-8 replaced", "p=%FF", "application/x-www-form-urlencoded", true, map[string]string{"p": `"\ufffd"`}},
		{"exactly 1 MiB", blocksOneMiBJSON(), "application/json", false,
			map[string]string{"a": `"` + strings.Repeat("x", maxBodyBytes-8) + `"`}},
	}
	for _, tc := range tests {
		got, err := decodeBody(blocksBodyRequest(tc.body, tc.ct), tc.allowForm)
		if err != nil {
			t.Errorf("%s: decodeBody error = %v, want none", tc.name, err)
			continue
		}
		if got == nil {
			t.Errorf("%s: decodeBody = nil map, want non-nil", tc.name)
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %d keys %v, want %d keys", tc.name, len(got), blocksKeys(got), len(tc.want))
		}
		for k, want := range tc.want {
			raw, ok := got[k]
			if !ok {
				t.Errorf("%s: key %q missing", tc.name, k)
				continue
			}
			if !json.Valid(raw) {
				t.Errorf("%s: key %q holds invalid JSON %q", tc.name, k, raw)
			}
			// Form values are compared decoded: the escaping of a JSON string
			// is not part of the contract.
			if !blocksJSONEqual(raw, []byte(want)) {
				if len(want) > 80 {
					t.Errorf("%s: key %q = %d bytes, want %d bytes", tc.name, k, len(raw), len(want))
				} else {
					t.Errorf("%s: key %q = %s, want %s", tc.name, k, raw, want)
				}
			}
		}
	}
}

func blocksKeys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// blocksJSONEqual compares strings by value and everything else by text, since
// numbers must stay verbatim.
func blocksJSONEqual(a, b []byte) bool {
	var sa, sb string
	if json.Unmarshal(a, &sa) == nil && json.Unmarshal(b, &sb) == nil {
		return sa == sb
	}
	return string(a) == string(b)
}

func TestDecodeBodyTooLarge(t *testing.T) {
	over := blocksOneMiBJSON() + " "
	tests := []struct {
		name string
		req  func() *http.Request
	}{
		{"declared length over the limit is not read", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(blocksUnreadable{t}))
			r.ContentLength = maxBodyBytes + 1
			r.Header.Set("Content-Type", "application/json")
			return r
		}},
		{"unknown length (chunked)", func() *http.Request {
			r := blocksBodyRequest(over, "application/json")
			r.ContentLength = -1
			return r
		}},
		{"body under a lying Content-Length", func() *http.Request {
			r := blocksBodyRequest(over, "application/json")
			r.ContentLength = 10
			return r
		}},
		{"server-side MaxBytesReader", func() *http.Request {
			r := blocksBodyRequest(`{"a":"0123456789"}`, "application/json")
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 5)
			return r
		}},
	}
	for _, tc := range tests {
		_, err := decodeBody(tc.req(), false)
		if err == nil {
			t.Errorf("%s: err = nil, want 413", tc.name)
			continue
		}
		blocksCheck(t, tc.name, blocksRender(err), http.StatusRequestEntityTooLarge, `{"detail":"Request body exceeds 1 MiB."}`)
	}
}

type blocksFailingBody struct{}

func (blocksFailingBody) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestDecodeBodyReadFailure(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(blocksFailingBody{}))
	r.ContentLength = 5
	r.Header.Set("Content-Type", "application/json")
	_, err := decodeBody(r, false)
	if err == nil {
		t.Fatalf("err = nil, want 400")
	}
	blocksCheck(t, "read failure", blocksRender(err), http.StatusBadRequest, `{"detail":"Malformed request."}`)
}
