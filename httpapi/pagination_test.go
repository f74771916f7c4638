package httpapi

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    cursor
	}{
		{"empty forward", cursor{}},
		{"empty reverse", cursor{Reverse: true}},
		{"id key", cursor{Position: []byte{0, 0, 0, 0, 0, 0, 0, 42}}},
		{"id key reverse", cursor{Position: []byte{0, 0, 0, 0, 0, 0, 0, 42}, Reverse: true}},
		{"time and uuid key", cursor{Position: append([]byte("2019-05-10T12:34:56.123456Z"), bytes.Repeat([]byte{0xff}, 16)...)}},
		{"long key", cursor{Position: bytes.Repeat([]byte{0xab, 0x00, 0x3f}, 2000), Reverse: true}},
	}
	for _, tc := range tests {
		s := encodeCursor(tc.c)
		if strings.ContainsAny(s, "+/=%&? \n") {
			t.Errorf("%s: encoded %q is not URL-safe unpadded base64", tc.name, s)
		}
		got, err := decodeCursor(s)
		if err != nil {
			t.Errorf("%s: decodeCursor(%q) error = %v, want none", tc.name, s, err)
			continue
		}
		if got.Reverse != tc.c.Reverse || !bytes.Equal(got.Position, tc.c.Position) {
			t.Errorf("%s: round trip = %+v, want %+v", tc.name, got, tc.c)
		}
		if again := encodeCursor(got); again != s {
			t.Errorf("%s: re-encoding = %q, want %q", tc.name, again, s)
		}
	}
	// The decoded position must not alias anything the caller could reuse.
	c, _ := decodeCursor(encodeCursor(cursor{Position: []byte("abc")}))
	c.Position[0] = 'z'
	if d, _ := decodeCursor(encodeCursor(cursor{Position: []byte("abc")})); string(d.Position) != "abc" {
		t.Errorf("decoded positions alias each other: %q", d.Position)
	}
}

// blocksRawCursor encodes an arbitrary payload with a valid checksum, to
// reach the checks behind it.
func blocksRawCursor(payload []byte) string {
	b := binary.BigEndian.AppendUint32(append([]byte(nil), payload...), crc32.ChecksumIEEE(payload))
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestDecodeCursorGarbage(t *testing.T) {
	valid := encodeCursor(cursor{Position: []byte("2019-05-10T12:34:56Z/0f5b"), Reverse: true})
	garbage := []struct {
		name string
		s    string
	}{
		{"empty", ""},
		{"not base64", "!!!!"},
		{"spaces", "abc def"},
		{"padded", valid + "=="},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+/"},
		{"too short", base64.RawURLEncoding.EncodeToString([]byte{1, 0, 0})},
		{"newline inside", valid[:4] + "\n" + valid[4:]},
		{"DRF style cursor", base64.StdEncoding.EncodeToString([]byte("o=1000&r=1&p=2019-05-10"))},
		{"unknown version", blocksRawCursor([]byte{2, 0, 'k'})},
		{"unknown flag bit", blocksRawCursor([]byte{1, 2, 'k'})},
		{"no header", blocksRawCursor(nil)},
	}
	for i := 1; i < len(valid); i++ {
		garbage = append(garbage, struct{ name, s string }{fmt.Sprintf("truncated to %d characters", i), valid[:i]})
	}
	for i := range valid {
		b := []byte(valid)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		garbage = append(garbage, struct{ name, s string }{fmt.Sprintf("character %d changed", i), string(b)})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		garbage = append(garbage, struct{ name, s string }{"random bytes", base64.RawURLEncoding.EncodeToString(b)})
		garbage = append(garbage, struct{ name, s string }{"random text", string(b)})
	}
	for _, tc := range garbage {
		if c, err := decodeCursor(tc.s); err == nil {
			t.Errorf("%s: decodeCursor(%q) = %+v, nil; want an error", tc.name, tc.s, c)
		}
	}
}

func TestPageParams(t *testing.T) {
	valid := encodeCursor(cursor{Position: []byte{7}, Reverse: true})
	tests := []struct {
		name       string
		query      string
		wantCursor *cursor
		wantSize   int
		status     int
		body       string
	}{
		{name: "defaults", query: "", wantSize: 1000},
		{name: "other parameters ignored", query: "enabled=true&endpoint=x", wantSize: 1000},
		{name: "cursor", query: "cursor=" + valid, wantCursor: &cursor{Position: []byte{7}, Reverse: true}, wantSize: 1000},
		{name: "empty cursor is the first page", query: "cursor=", wantSize: 1000},
		{name: "repeated cursor: last wins", query: "cursor=garbage&cursor=" + valid, wantCursor: &cursor{Position: []byte{7}, Reverse: true}, wantSize: 1000},
		{name: "bad cursor", query: "cursor=garbage", status: 404, body: `{"detail":"Invalid cursor"}`},
		{name: "size 1", query: "page_size=1", wantSize: 1},
		{name: "size 1000", query: "page_size=1000", wantSize: 1000},
		{name: "size with spaces", query: "page_size=+7+", wantSize: 7},
		{name: "size with sign", query: "page_size=%2B5", wantSize: 5},
		{name: "size with zero decimals", query: "page_size=10.00", wantSize: 10},
		{name: "size leading zeros", query: "page_size=007", wantSize: 7},
		{name: "empty size is the default", query: "page_size=", wantSize: 1000},
		{name: "repeated size: last wins", query: "page_size=5&page_size=9", wantSize: 9},
		{name: "size 0", query: "page_size=0", status: 400, body: `{"page_size":["Ensure this value is between 1 and 1000."]}`},
		{name: "size 1001", query: "page_size=1001", status: 400, body: `{"page_size":["Ensure this value is between 1 and 1000."]}`},
		{name: "negative size", query: "page_size=-1", status: 400, body: `{"page_size":["Ensure this value is between 1 and 1000."]}`},
		{name: "huge size", query: "page_size=99999999999999999999999", status: 400, body: `{"page_size":["Ensure this value is between 1 and 1000."]}`},
		{name: "word", query: "page_size=ten", status: 400, body: `{"page_size":["A valid integer is required."]}`},
		{name: "fraction", query: "page_size=1.5", status: 400, body: `{"page_size":["A valid integer is required."]}`},
		{name: "exponent", query: "page_size=1e3", status: 400, body: `{"page_size":["A valid integer is required."]}`},
		{name: "hex", query: "page_size=0x10", status: 400, body: `{"page_size":["A valid integer is required."]}`},
		{name: "bare dot", query: "page_size=.", status: 400, body: `{"page_size":["A valid integer is required."]}`},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/schedule/?"+tc.query, nil)
		c, size, err := pageParams(r)
		if tc.status != 0 {
			if err == nil {
				t.Errorf("%s: pageParams = (%v, %d, nil), want %d %s", tc.name, c, size, tc.status, tc.body)
				continue
			}
			blocksCheck(t, tc.name, blocksRender(err), tc.status, tc.body)
			continue
		}
		if err != nil {
			t.Errorf("%s: error = %v, want none", tc.name, err)
			continue
		}
		if size != tc.wantSize {
			t.Errorf("%s: size = %d, want %d", tc.name, size, tc.wantSize)
		}
		switch {
		case tc.wantCursor == nil && c != nil:
			t.Errorf("%s: cursor = %+v, want nil", tc.name, *c)
		case tc.wantCursor != nil && (c == nil || c.Reverse != tc.wantCursor.Reverse || !bytes.Equal(c.Position, tc.wantCursor.Position)):
			t.Errorf("%s: cursor = %+v, want %+v", tc.name, c, *tc.wantCursor)
		}
	}
}

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		tls     bool
		headers map[string]string
		want    string
	}{
		{"plain", "http://node1:8000/api/v1/", false, nil, "http://node1:8000"},
		{"tls", "https://node1/api/v1/", true, nil, "https://node1"},
		{"forwarded proto", "http://node1:8000/", false, map[string]string{"X-Forwarded-Proto": "https"}, "https://node1:8000"},
		{"forwarded proto list", "http://node1/", false, map[string]string{"X-Forwarded-Proto": "https, http"}, "https://node1"},
		{"forwarded proto uppercase", "http://node1/", false, map[string]string{"X-Forwarded-Proto": " HTTPS "}, "https://node1"},
		{"forwarded http over tls", "https://node1/", true, map[string]string{"X-Forwarded-Proto": "http"}, "http://node1"},
		{"unusable forwarded proto", "https://node1/", true, map[string]string{"X-Forwarded-Proto": "ftp"}, "https://node1"},
		{"forwarded host", "http://node1:8000/", false, map[string]string{"X-Forwarded-Host": "seed.example.org"}, "http://seed.example.org"},
		{"forwarded host list", "http://node1:8000/", false, map[string]string{"X-Forwarded-Host": "seed.example.org:8443, lb.internal"}, "http://seed.example.org:8443"},
		{"both", "http://node1:8000/", false, map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "seed.example.org"}, "https://seed.example.org"},
		{"empty forwarded host", "http://node1:8000/", false, map[string]string{"X-Forwarded-Host": ""}, "http://node1:8000"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, tc.target, nil)
		if !tc.tls {
			r.TLS = nil
		} else if r.TLS == nil {
			r.TLS = &tls.ConnectionState{}
		}
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		if got := baseURL(r); got != tc.want {
			t.Errorf("%s: baseURL = %q, want %q", tc.name, got, tc.want)
		}
		if got, want := absURL(r, "/api/v1/user/2/"), tc.want+"/api/v1/user/2/"; got != want {
			t.Errorf("%s: absURL = %q, want %q", tc.name, got, want)
		}
	}
}

func TestPageURL(t *testing.T) {
	c := cursor{Position: []byte("k"), Reverse: true}
	enc := encodeCursor(c)
	tests := []struct {
		name    string
		target  string
		headers map[string]string
		want    string
	}{
		{"no query", "http://h/api/v1/user/", nil, "http://h/api/v1/user/?cursor=" + enc},
		{"cursor replaced, others kept and sorted", "http://h/api/v1/schedule/?enabled=true&cursor=old&page_size=2&endpoint=http%3A%2F%2Fx%2F",
			nil, "http://h/api/v1/schedule/?cursor=" + enc + "&enabled=true&endpoint=http%3A%2F%2Fx%2F&page_size=2"},
		{"repeated cursor collapses", "http://h/x/?cursor=a&cursor=b&z=1", nil, "http://h/x/?cursor=" + enc + "&z=1"},
		{"repeated other parameter kept", "http://h/x/?a=2&a=1", nil, "http://h/x/?a=2&a=1&cursor=" + enc},
		{"spaces re-encoded", "http://h/x/?q=a%20b", nil, "http://h/x/?cursor=" + enc + "&q=a+b"},
		{"escaped path kept", "http://h/x/a%2Fb/", nil, "http://h/x/a%2Fb/?cursor=" + enc},
		{"behind the load balancer", "http://node1:8000/api/v1/group/?page_size=1",
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "seed.example.org"},
			"https://seed.example.org/api/v1/group/?cursor=" + enc + "&page_size=1"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest(http.MethodGet, tc.target, nil)
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		got := pageURL(r, c)
		if got != tc.want {
			t.Errorf("%s: pageURL = %q, want %q", tc.name, got, tc.want)
			continue
		}
		// The link must lead back to the same cursor.
		u, err := url.Parse(got)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", tc.name, got, err)
			continue
		}
		back, _, err := pageParams(httptest.NewRequest(http.MethodGet, u.RequestURI(), nil))
		if err != nil || back == nil || !back.Reverse || string(back.Position) != "k" {
			t.Errorf("%s: following %q gives cursor %+v, err %v; want %+v", tc.name, got, back, err, c)
		}
	}
}

func TestPageBody(t *testing.T) {
	next, prev := "http://h/x/?cursor=n", "http://h/x/?cursor=p"
	tests := []struct {
		name       string
		count      uint64
		next, prev *string
		results    []any
		want       string
	}{
		{"empty list", 0, nil, nil, nil, `{"count":0,"next":null,"previous":null,"results":[]}`},
		{"first page", 3, &next, nil, []any{newObject().set("url", "u").set("name", "g")},
			`{"count":3,"next":"http://h/x/?cursor=n","previous":null,"results":[{"url":"u","name":"g"}]}`},
		{"middle page", 5, &next, &prev, []any{1, 2},
			`{"count":5,"next":"http://h/x/?cursor=n","previous":"http://h/x/?cursor=p","results":[1,2]}`},
		{"last page", 5, nil, &prev, []any{},
			`{"count":5,"next":null,"previous":"http://h/x/?cursor=p","results":[]}`},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		writeJSON(rec, http.StatusOK, pageBody(tc.count, tc.next, tc.prev, tc.results))
		blocksCheck(t, tc.name, rec, http.StatusOK, tc.want)
	}
}
