package slots

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// Years a cron definition may name. The upper bound is also where Next
// gives up, which keeps impossible definitions (Feb 30) cheap to reject.
const (
	minYear = 1970
	maxYear = 2099
)

// Cron is a parsed cron definition. Each field is a bitset of the values it
// selects (bit v = value v; years are offset by minYear), so matching and
// "next value" lookups are a few bit operations.
//
// Cron values are comparable with ==: two definitions that select the same
// slots under the same day rule compare equal (e.g. "@daily" and "0 0 * * *").
type Cron struct {
	second, minute, hour uint64
	dom, month, dow      uint64 // dom bits 1..31, month bits 1..12, dow bits 0..6 (7 folded into 0)
	years                [3]uint64

	// Classic cron rule: the day fields are OR-ed only when both are
	// restricted, so the parser must remember whether each was "*".
	domStar, dowStar bool

	// dowDays[w] are the days of a month (bits 1..31) whose weekday is in
	// dow when the 1st of that month falls on weekday w. Precomputed so
	// Next can build a month's day set without walking its days.
	dowDays [7]uint64
}

// fieldSpec describes one cron field: the values it accepts and how "*" and
// the open-ended "a/n" expand.
type fieldSpec struct {
	min, max int // accepted values; also the bounds quoted in range errors
	// starMax is where "*" and "a/n" stop. It differs from max only for
	// day of week, where 7 is accepted as Sunday but "*/2" or "1/2" must
	// not select Sunday a second time through 7.
	starMax  int
	names    map[string]int
	question bool // "?" accepted as "*" (Quartz habit for the day fields)
	base     int  // value stored in bit 0; non-zero only for years
}

var (
	secondSpec = fieldSpec{min: 0, max: 59, starMax: 59}
	minuteSpec = fieldSpec{min: 0, max: 59, starMax: 59}
	hourSpec   = fieldSpec{min: 0, max: 23, starMax: 23}
	domSpec    = fieldSpec{min: 1, max: 31, starMax: 31, question: true}
	monthSpec  = fieldSpec{min: 1, max: 12, starMax: 12, names: map[string]int{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}}
	dowSpec = fieldSpec{min: 0, max: 7, starMax: 6, question: true, names: map[string]int{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}}
	yearSpec = fieldSpec{min: minYear, max: maxYear, starMax: maxYear, base: minYear}
)

// aliases expand to the 7-field form (second minute hour dom month dow year).
var aliases = map[string]string{
	"@yearly":   "0 0 0 1 1 * *",
	"@annually": "0 0 0 1 1 * *",
	"@monthly":  "0 0 0 1 * * *",
	"@weekly":   "0 0 0 * * 0 *",
	"@daily":    "0 0 0 * * * *",
	"@hourly":   "0 0 * * * * *",
}

// Reasons quoted after "<value> is not a valid crontab string: ". Quoted
// parts use %q so that odd input (quotes, control bytes) cannot garble the
// message.
const (
	reasonCount   = "improper number of cron entries specified; got %d need 5 to 7"
	reasonRange   = "item value %s out of range [%d, %d]"
	reasonBadRng  = "invalid range %q"
	reasonBadStep = "invalid step %q"
	reasonBadItem = "invalid item %q"
	reasonAlias   = "unknown alias %q"
)

// ParseCron parses a cron definition (surrounding whitespace is ignored).
// Accepted: 5 fields (minute hour dom month dow), 6 fields (the 6th is the
// year), 7 fields (second minute hour dom month dow year), and the aliases
// @yearly @annually @monthly @weekly @daily @hourly. Errors are
// *ValidationError with Field "cron_definition".
func ParseCron(def string) (*Cron, error) {
	def = strings.TrimSpace(def)
	if strings.HasPrefix(def, "@") {
		expanded, ok := aliases[asciiLower(def)]
		if !ok {
			return nil, cronError(def, fmt.Sprintf(reasonAlias, def))
		}
		// The expansions are static and each is parsed by the tests.
		c, _ := parseFields(strings.Fields(expanded))
		return c, nil
	}
	fields := strings.Fields(def)
	switch len(fields) {
	case 5:
		// No seconds field: fire at second 0, every year.
		fields = append([]string{"0"}, append(fields, "*")...)
	case 6:
		fields = append([]string{"0"}, fields...)
	case 7:
	default:
		return nil, cronError(def, fmt.Sprintf(reasonCount, len(fields)))
	}
	c, reason := parseFields(fields)
	if reason != "" {
		return nil, cronError(def, reason)
	}
	return c, nil
}

func cronError(def, reason string) *ValidationError {
	return &ValidationError{Field: FieldCron, Message: def + " is not a valid crontab string: " + reason}
}

// parseFields parses the 7-field form; reason is "" on success.
func parseFields(f []string) (c *Cron, reason string) {
	c = new(Cron)
	var sets [7][3]uint64
	var stars [7]bool
	specs := [7]*fieldSpec{&secondSpec, &minuteSpec, &hourSpec, &domSpec, &monthSpec, &dowSpec, &yearSpec}
	for i, spec := range specs {
		if sets[i], stars[i], reason = spec.parse(f[i]); reason != "" {
			return nil, reason
		}
	}
	c.second, c.minute, c.hour = sets[0][0], sets[1][0], sets[2][0]
	c.dom, c.month = sets[3][0], sets[4][0]
	c.dow = sets[5][0]
	if c.dow&(1<<7) != 0 {
		c.dow = c.dow&^(1<<7) | 1
	}
	c.years = sets[6]
	c.domStar, c.dowStar = stars[3], stars[5]
	for first := range 7 {
		for d := 1; d <= 31; d++ {
			if c.dow&(1<<((first+d-1)%7)) != 0 {
				c.dowDays[first] |= 1 << d
			}
		}
	}
	return c, ""
}

// parse returns the field's value set (bit v-f.base for value v) and
// whether the field is unrestricted. Only a bare "*" (or "?") counts as unrestricted for the
// day-of-month/day-of-week rule, as in the contract's "neither is *".
func (f *fieldSpec) parse(text string) (set [3]uint64, star bool, reason string) {
	star = text == "*" || (f.question && text == "?")
	for item := range strings.SplitSeq(text, ",") {
		if reason = f.parseItem(item, &set); reason != "" {
			return set, false, reason
		}
	}
	return set, star, ""
}

func (f *fieldSpec) parseItem(item string, set *[3]uint64) string {
	base, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, ok := parseStep(stepText)
		if !ok {
			return fmt.Sprintf(reasonBadStep, stepText)
		}
		step = n
	}
	var lo, hi int
	if base == "*" || (f.question && base == "?") {
		lo, hi = f.min, f.starMax
	} else {
		loText, hiText, isRange := strings.Cut(base, "-")
		var reason string
		if lo, reason = f.value(loText, item); reason != "" {
			return reason
		}
		switch {
		case isRange:
			if hi, reason = f.value(hiText, item); reason != "" {
				return reason
			}
			if lo > hi {
				return fmt.Sprintf(reasonBadRng, base)
			}
		case hasStep:
			// "a/n" is "a-max/n", as in Vixie cron.
			hi = max(f.starMax, lo)
		default:
			hi = lo
		}
	}
	for v := lo; v <= hi; v += step {
		i := v - f.base
		set[i/64] |= 1 << (i % 64)
	}
	return ""
}

// value parses one number or name. Unknown tokens are reported with the
// whole list item, since a fragment like "" (from "-5") would say nothing.
func (f *fieldSpec) value(tok, item string) (int, string) {
	if tok != "" && isDigits(tok) {
		digits := strings.TrimLeft(tok, "0")
		if digits == "" {
			digits = "0"
		}
		// Longer than 4 digits cannot be in any range and might not fit an int.
		if len(digits) <= 4 {
			if n, _ := strconv.Atoi(digits); n >= f.min && n <= f.max {
				return n, ""
			}
		}
		return 0, fmt.Sprintf(reasonRange, digits, f.min, f.max)
	}
	if n, ok := f.names[asciiLower(tok)]; ok {
		return n, ""
	}
	return 0, fmt.Sprintf(reasonBadItem, item)
}

// parseStep accepts a positive decimal; steps beyond every range are
// clamped rather than rejected because they are harmless (they select only
// the start), and clamping keeps the expansion loop free of overflow.
func parseStep(s string) (int, bool) {
	if s == "" || !isDigits(s) {
		return 0, false
	}
	digits := strings.TrimLeft(s, "0")
	if digits == "" {
		return 0, false
	}
	if len(digits) > 4 {
		return 1 << 16, true
	}
	n, _ := strconv.Atoi(digits)
	return n, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// asciiLower folds only ASCII letters: strings.ToLower/EqualFold would let
// look-alikes such as "ſun" (long s) or "K" (Kelvin sign) match a name.
func asciiLower(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			b[i] = ch + ('a' - 'A')
		}
	}
	return string(b)
}

// Next returns the first slot strictly after t (t is converted to UTC and
// truncated to the second first), or ok=false if there is none up to the
// end of 2099.
//
// It descends year → month → day → hour → minute → second, jumping straight
// to the next selected value of each field and resetting the smaller ones;
// a field with no value left carries into the next larger unit. Every step
// either finds a match or moves a larger unit forward, so the work is
// bounded by a few steps per month even when nothing ever matches.
func (c *Cron) Next(t time.Time) (time.Time, bool) {
	t = t.UTC()
	if t.Year() > maxYear {
		return time.Time{}, false
	}
	y, mo, d, h, mi, s := minYear, 1, 1, 0, 0, 0
	if t.Year() >= minYear {
		u := t.Truncate(time.Second).Add(time.Second)
		var month time.Month
		y, month, d = u.Date()
		h, mi, s = u.Clock()
		mo = int(month)
	}
	for y <= maxYear {
		ny, ok := c.nextYear(y)
		if !ok {
			break
		}
		if ny != y {
			y, mo, d, h, mi, s = ny, 1, 1, 0, 0, 0
		}
		nmo, ok := nextBit(c.month, mo)
		if !ok {
			y, mo, d, h, mi, s = y+1, 1, 1, 0, 0, 0
			continue
		}
		if nmo != mo {
			mo, d, h, mi, s = nmo, 1, 0, 0, 0
		}
		nd, ok := nextBit(c.days(y, mo), d)
		if !ok {
			mo, d, h, mi, s = mo+1, 1, 0, 0, 0
			continue
		}
		if nd != d {
			d, h, mi, s = nd, 0, 0, 0
		}
		nh, ok := nextBit(c.hour, h)
		if !ok {
			d, h, mi, s = d+1, 0, 0, 0
			continue
		}
		if nh != h {
			h, mi, s = nh, 0, 0
		}
		nmi, ok := nextBit(c.minute, mi)
		if !ok {
			h, mi, s = h+1, 0, 0
			continue
		}
		if nmi != mi {
			mi, s = nmi, 0
		}
		ns, ok := nextBit(c.second, s)
		if !ok {
			mi, s = mi+1, 0
			continue
		}
		return time.Date(y, time.Month(mo), d, h, mi, ns, 0, time.UTC), true
	}
	return time.Time{}, false
}

// days is the set of days (bits 1..31) of month mo of year y that the
// definition selects.
func (c *Cron) days(y, mo int) uint64 {
	first := time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC).Weekday()
	byDow := c.dowDays[first]
	var days uint64
	if c.domStar || c.dowStar {
		days = c.dom & byDow
	} else {
		days = c.dom | byDow
	}
	n := daysIn(y, mo)
	return days & (1<<(n+1) - 1)
}

func daysIn(y, mo int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func (c *Cron) nextYear(y int) (int, bool) {
	for i := y - minYear; i <= maxYear-minYear; {
		w := c.years[i/64] >> (i % 64)
		if w != 0 {
			return minYear + i + bits.TrailingZeros64(w), true
		}
		i = (i/64 + 1) * 64
	}
	return 0, false
}

// nextBit returns the smallest set bit of set at index >= from.
func nextBit(set uint64, from int) (int, bool) {
	if from >= 64 {
		return 0, false
	}
	w := set >> from
	if w == 0 {
		return 0, false
	}
	return from + bits.TrailingZeros64(w), true
}
