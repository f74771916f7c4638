package slots

import (
	"strconv"
	"strings"
	"time"
)

// Interval is "<positive integer> <period>": a slot every Every, counted
// from the schedule's anchor (see Spec).
type Interval struct {
	Every time.Duration
}

// maxInterval bounds intervals so that Every (and anchor + Every) cannot
// overflow time.Duration / time.Time arithmetic; no real schedule needs
// more than a century between slots.
const maxInterval = 36500 * 24 * time.Hour

var periods = map[string]time.Duration{
	"days": 24 * time.Hour, "day": 24 * time.Hour,
	"hours": time.Hour, "hour": time.Hour,
	"minutes": time.Minute, "minute": time.Minute,
	"seconds": time.Second, "second": time.Second,
}

// ParseInterval parses an interval definition (surrounding whitespace is
// ignored). Errors are *ValidationError with Field "interval_definition".
//
// Every message starts with the whole trimmed definition, including the
// unknown-period one: the contract writes "<value> is not a valid period"
// with the same <value> as its other messages, and the original service
// formatted all of them with the full definition.
//
// Checks run in this order: shape ("<integer> <word>", split on any run of
// whitespace like Python's str.split), period, sign, length. The integer may
// carry a sign so that "-1 minutes" is reported as not positive rather than
// as malformed.
func ParseInterval(def string) (Interval, error) {
	def = strings.TrimSpace(def)
	fail := func(msg string) (Interval, error) {
		return Interval{}, &ValidationError{Field: FieldInterval, Message: def + msg}
	}
	parts := strings.Fields(def)
	if len(parts) != 2 {
		return fail(" is not a valid interval string: integer and period (from: days, hours, minutes, seconds) e.g. 1 minutes")
	}
	num, negative := parts[0], false
	if num != "" && (num[0] == '+' || num[0] == '-') {
		num, negative = num[1:], num[0] == '-'
	}
	if num == "" || !isDigits(num) {
		return fail(" is not a valid interval string: integer and period (from: days, hours, minutes, seconds) e.g. 1 minutes")
	}
	unit, ok := periods[asciiLower(parts[1])]
	if !ok {
		return fail(" is not a valid period. Accepted: days, hours, minutes, seconds")
	}
	num = strings.TrimLeft(num, "0")
	if num == "" || negative {
		return fail(" is not a valid interval: the integer must be positive")
	}
	// Compare before multiplying: the product could overflow int64.
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > int64(maxInterval/unit) {
		return fail(" is not a valid interval: too long")
	}
	return Interval{Every: time.Duration(n) * unit}, nil
}
