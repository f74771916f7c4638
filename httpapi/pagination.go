package httpapi

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/seedscheduler/schedulerd/fsm"
)

const defaultPageSize = 1000

// cursor is the decoded position: Position is an opaque key (bytes), Reverse
// means "previous page".
type cursor struct {
	Position []byte
	Reverse  bool
}

// Wire form of a cursor, before base64:
//
//	version (1 byte) | flags (1 byte, bit 0 = Reverse) | position | CRC-32 (4 bytes, big endian)
//
// The checksum is not a security measure (a cursor only selects where a
// listing the caller may read anyway starts); it makes a mangled or made-up
// cursor a clean "Invalid cursor" instead of a silently wrong page.
const (
	cursorVersion     = 1
	cursorFlagReverse = 1 << 0
	cursorOverhead    = 2 + crc32.Size
)

var cursorEncoding = base64.RawURLEncoding.Strict()

var errCursorGarbage = errors.New("invalid cursor")

func encodeCursor(c cursor) string {
	b := make([]byte, 0, cursorOverhead+len(c.Position))
	var flags byte
	if c.Reverse {
		flags |= cursorFlagReverse
	}
	b = append(b, cursorVersion, flags)
	b = append(b, c.Position...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return cursorEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) < cursorOverhead {
		return cursor{}, errCursorGarbage
	}
	// The decoder skips CR and LF; insisting on the canonical spelling keeps
	// one string per cursor.
	if cursorEncoding.EncodeToString(b) != s {
		return cursor{}, errCursorGarbage
	}
	payload, sum := b[:len(b)-crc32.Size], b[len(b)-crc32.Size:]
	if crc32.ChecksumIEEE(payload) != binary.BigEndian.Uint32(sum) {
		return cursor{}, errCursorGarbage
	}
	if payload[0] != cursorVersion || payload[1]&^cursorFlagReverse != 0 {
		return cursor{}, errCursorGarbage
	}
	c := cursor{Reverse: payload[1]&cursorFlagReverse != 0}
	if pos := payload[2:]; len(pos) > 0 {
		c.Position = append([]byte(nil), pos...)
	}
	return c, nil
}

func errInvalidCursor() *apiError {
	return &apiError{Status: http.StatusNotFound, Detail: "Invalid cursor"}
}

// pageSizeDecimalSuffix is what DRF's IntegerField strips before int(), so "10.0" is
// accepted as 10.
var pageSizeDecimalSuffix = regexp.MustCompile(`\.0*\s*$`)

// pageParams reads the cursor and page_size query parameters. Errors are
// *apiError values ready for writeError. Like Django's QueryDict.get, a
// repeated parameter counts with its last value, and an empty one counts as
// absent (DRF treats "cursor=" as the first page).
func pageParams(r *http.Request) (c *cursor, size int, err error) {
	q := r.URL.Query()
	size = defaultPageSize
	if s := queryLast(q, "page_size"); s != "" {
		fe := fieldErrors{}
		n, perr := strconv.ParseInt(pageSizeDecimalSuffix.ReplaceAllString(strings.TrimSpace(s), ""), 10, 64)
		switch {
		case perr != nil && !errors.Is(perr, strconv.ErrRange):
			fe.add("page_size", "A valid integer is required.")
		case perr != nil || n < 1 || n > defaultPageSize:
			fe.add("page_size", "Ensure this value is between 1 and 1000.")
		}
		if len(fe) > 0 {
			return nil, 0, &apiError{Status: http.StatusBadRequest, Fields: fe}
		}
		size = int(n)
	}
	if s := queryLast(q, "cursor"); s != "" {
		dc, derr := decodeCursor(s)
		if derr != nil {
			return nil, 0, errInvalidCursor()
		}
		c = &dc
	}
	return c, size, nil
}

func queryLast(q url.Values, key string) string {
	vs := q[key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// baseURL is scheme://host as the client saw it, so that links work behind
// the load balancer. Only http and https are taken from X-Forwarded-Proto: a
// link with any other scheme would be unusable.
func baseURL(r *http.Request) string {
	scheme := strings.ToLower(firstForwarded(r.Header.Get("X-Forwarded-Proto")))
	if scheme != "http" && scheme != "https" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	host := firstForwarded(r.Header.Get("X-Forwarded-Host"))
	if host == "" {
		host = r.Host
	}
	if host == "" {
		host = r.URL.Host
	}
	return scheme + "://" + host
}

// firstForwarded is the first element of a comma-separated header: the one
// set by the proxy nearest to the client.
func firstForwarded(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// absURL joins baseURL with an absolute path such as "/api/v1/user/2/".
func absURL(r *http.Request, path string) string {
	return baseURL(r) + path
}

// pageURL is the request URL with only the cursor replaced; the query is
// re-encoded with sorted keys as DRF's replace_query_param does.
func pageURL(r *http.Request, c cursor) string {
	q := r.URL.Query()
	q.Set("cursor", encodeCursor(c))
	return baseURL(r) + r.URL.EscapedPath() + "?" + q.Encode()
}

// pageBody is the contract's list body, keys in the contract's order.
// A nil next or prev is written as null and nil results as [].
func pageBody(count uint64, next, prev *string, results []any) *orderedObject {
	if results == nil {
		results = []any{}
	}
	return newObject().
		set("count", count).
		set("next", nullableLink(next)).
		set("previous", nullableLink(prev)).
		set("results", results)
}

func nullableLink(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// pageLinks builds next/previous from the positions of a page's first and
// last rows (nil when there is nothing on that side).
func pageLinks(r *http.Request, positions [][]byte, hasBefore, hasAfter bool) (next, prev *string) {
	n := len(positions)
	if n == 0 {
		return nil, nil
	}
	if hasAfter {
		u := pageURL(r, cursor{Position: positions[n-1]})
		next = &u
	}
	if hasBefore {
		u := pageURL(r, cursor{Position: positions[0], Reverse: true})
		prev = &u
	}
	return next, prev
}

// page is what a list handler reads for servePage.
type page struct {
	items               []any
	positions           [][]byte // per item, for cursors
	hasBefore, hasAfter bool
	count               uint64
}

// servePage serves one cursor-paginated list: it reads the cursor and page
// size, lets read fetch the page inside one read transaction (position nil
// = first page), and writes the contract's body with its links.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request, read func(tx *bolt.Tx, position []byte, reverse bool, size int) (page, error)) {
	c, size, err := pageParams(r)
	if err != nil {
		writeError(w, err)
		return
	}
	var pos []byte
	reverse := false
	if c != nil {
		pos, reverse = c.Position, c.Reverse
	}
	var next, prev *string
	var p page
	err = s.node.FSM().View(func(tx *bolt.Tx) (err error) {
		p, err = read(tx, pos, reverse, size)
		if err == nil {
			next, prev = pageLinks(r, p.positions, p.hasBefore, p.hasAfter)
		}
		return err
	})
	if errors.Is(err, fsm.ErrInvalidPosition) {
		err = errInvalidCursor()
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pageBody(p.count, next, prev, p.items))
}
