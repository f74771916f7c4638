package slots

import (
	"errors"
	"testing"
	"time"
)

func TestParseInterval(t *testing.T) {
	tests := []struct {
		def  string
		want time.Duration
	}{
		{"1 minutes", time.Minute},
		{"1 minute", time.Minute},
		{"2 hours", 2 * time.Hour},
		{"1 hour", time.Hour},
		{"10 seconds", 10 * time.Second},
		{"1 second", time.Second},
		{"3 days", 72 * time.Hour},
		{"1 day", 24 * time.Hour},
		{"5 MINUTES", 5 * time.Minute},
		{"5 Hours", 5 * time.Hour},
		{"5 sEcOnD", 5 * time.Second},
		{"  7   days  ", 7 * 24 * time.Hour},
		{"7\tdays", 7 * 24 * time.Hour},
		{"007 seconds", 7 * time.Second},
		{"+5 minutes", 5 * time.Minute},
		{"90 minutes", 90 * time.Minute},
		{"36500 days", 36500 * 24 * time.Hour},
		{"876000 hours", 876000 * time.Hour},
		{"3153600000 seconds", 3153600000 * time.Second},
	}
	for _, tt := range tests {
		got, err := ParseInterval(tt.def)
		if err != nil || got.Every != tt.want {
			t.Errorf("ParseInterval(%q) = %v, %v; want %v, nil", tt.def, got.Every, err, tt.want)
		}
	}
}

func TestParseIntervalErrors(t *testing.T) {
	const (
		shape    = " is not a valid interval string: integer and period (from: days, hours, minutes, seconds) e.g. 1 minutes"
		period   = " is not a valid period. Accepted: days, hours, minutes, seconds"
		positive = " is not a valid interval: the integer must be positive"
		tooLong  = " is not a valid interval: too long"
	)
	tests := []struct {
		def, want string
	}{
		{"", shape},
		{"   ", shape},
		{"minutes", "minutes" + shape},
		{"1", "1" + shape},
		{"1minutes", "1minutes" + shape},
		{"1 2 minutes", "1 2 minutes" + shape},
		{"minutes 1", "minutes 1" + shape},
		{"1.5 minutes", "1.5 minutes" + shape},
		{"one minutes", "one minutes" + shape},
		{"- minutes", "- minutes" + shape},
		{"+ minutes", "+ minutes" + shape},
		{"--1 minutes", "--1 minutes" + shape},
		{"1e3 seconds", "1e3 seconds" + shape},
		{"0x10 seconds", "0x10 seconds" + shape},
		{"١ minutes", "١ minutes" + shape}, // non-ASCII digits are not integers here
		{"  1 minutes extra ", "1 minutes extra" + shape},

		{"1 weeks", "1 weeks" + period},
		{"1 fortnight", "1 fortnight" + period},
		{"1 mins", "1 mins" + period},
		{"1 s", "1 s" + period},
		{"0 weeks", "0 weeks" + period}, // the period is checked before the sign
		{" 2  months ", "2  months" + period},
		{"1 ſeconds", "1 ſeconds" + period},

		{"0 minutes", "0 minutes" + positive},
		{"000 seconds", "000 seconds" + positive},
		{"-1 minutes", "-1 minutes" + positive},
		{"-0 minutes", "-0 minutes" + positive},
		{"-99999999999999999999999 days", "-99999999999999999999999 days" + positive},

		{"36501 days", "36501 days" + tooLong},
		{"876001 hours", "876001 hours" + tooLong},
		{"3153600001 seconds", "3153600001 seconds" + tooLong},
		{"9223372036854775807 seconds", "9223372036854775807 seconds" + tooLong},
		{"99999999999999999999999 days", "99999999999999999999999 days" + tooLong},
	}
	for _, tt := range tests {
		got, err := ParseInterval(tt.def)
		if err == nil {
			t.Errorf("ParseInterval(%q) = %v, want error %q", tt.def, got, tt.want)
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("ParseInterval(%q) error %T, want *ValidationError", tt.def, err)
			continue
		}
		if ve.Field != "interval_definition" {
			t.Errorf("ParseInterval(%q) field = %q, want interval_definition", tt.def, ve.Field)
		}
		if ve.Message != tt.want || err.Error() != tt.want {
			t.Errorf("ParseInterval(%q) message:\n got  %q\n want %q", tt.def, ve.Message, tt.want)
		}
	}
}
