package slots

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzParseCron(f *testing.F) {
	for _, s := range []string{
		"* * * * *", "25 * * * *", "*/15 9-17 1,15 jan-mar mon-fri", "0 0 29 2 *", "0 0 30 2 *",
		"0 0 1 1 * 2030", "30 */20 0 12 * * *", "@daily", "@sometimes", "5-2 * * * *", "*/0 * * * *",
		"99 * * * *", "* * * *", "0 0 ? * 7", "1/2/3 * * * *", "", " ",
	} {
		f.Add(s)
	}
	epoch := time.Unix(0, 0)
	f.Fuzz(func(t *testing.T, def string) {
		c, err := ParseCron(def)
		if err != nil {
			checkValidationError(t, err, "cron_definition", def)
			if c != nil {
				t.Fatalf("ParseCron(%q) returned both %+v and %v", def, c, err)
			}
			return
		}
		if next, ok := c.Next(epoch); ok && !next.After(epoch) {
			t.Fatalf("ParseCron(%q).Next(epoch) = %v, not after the epoch", def, next)
		}
		from := time.Date(2026, 5, 5, 10, 7, 30, 500, time.UTC)
		if next, ok := c.Next(from); ok && (!next.After(from) || next.Nanosecond() != 0) {
			t.Fatalf("ParseCron(%q).Next(%v) = %v", def, from, next)
		}
	})
}

func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{
		"1 minutes", "2 hours", "10 seconds", "3 days", "1 day", "0 minutes", "-1 minutes",
		"1 weeks", "minutes", "36501 days", "99999999999999999999 seconds", "", "+1 MINUTE",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, def string) {
		iv, err := ParseInterval(def)
		if err != nil {
			checkValidationError(t, err, "interval_definition", def)
			return
		}
		if iv.Every < time.Second || iv.Every > maxInterval || iv.Every%time.Second != 0 {
			t.Fatalf("ParseInterval(%q) = %v: not a whole positive number of seconds within bounds", def, iv.Every)
		}
		anchor := time.Date(2026, 5, 5, 10, 7, 30, 0, time.UTC)
		s := Spec{Interval: &iv, Anchor: anchor}
		if next, ok := s.Next(anchor); !ok || !next.Equal(anchor.Add(iv.Every)) {
			t.Fatalf("%q: Next(anchor) = %v ok=%v, want anchor+%v", def, next, ok, iv.Every)
		}
	})
}

func checkValidationError(t *testing.T, err error, field, def string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%q: error %T %v, want *ValidationError", def, err, err)
	}
	if ve.Field != field {
		t.Fatalf("%q: field %q, want %q", def, ve.Field, field)
	}
	if !strings.HasPrefix(ve.Message, strings.TrimSpace(def)) || ve.Message == strings.TrimSpace(def) {
		t.Fatalf("%q: message %q does not start with the trimmed input", def, ve.Message)
	}
	if utf8.ValidString(def) && !utf8.ValidString(ve.Message) {
		t.Fatalf("%q: message %q is not valid UTF-8", def, ve.Message)
	}
}
