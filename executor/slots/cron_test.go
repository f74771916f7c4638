package slots

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func mustCron(t testing.TB, def string) *Cron {
	t.Helper()
	c, err := ParseCron(def)
	if err != nil {
		t.Fatalf("ParseCron(%q): unexpected error %v", def, err)
	}
	return c
}

func ts(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad test time %q: %v", s, err)
	}
	return v
}

// bitset builds the expected set of a small field.
func bitset(vals ...int) uint64 {
	var b uint64
	for _, v := range vals {
		b |= 1 << v
	}
	return b
}

func span(lo, hi, step int) []int {
	var out []int
	for v := lo; v <= hi; v += step {
		out = append(out, v)
	}
	return out
}

func TestParseCronFields(t *testing.T) {
	allYears := mustCron(t, "* * * * *").years
	tests := []struct {
		def                                   string
		second, minute, hour, dom, month, dow uint64
		domStar, dowStar                      bool
	}{
		{"* * * * *", bitset(0), bitset(span(0, 59, 1)...), bitset(span(0, 23, 1)...), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(span(0, 6, 1)...), true, true},
		{"25 * * * *", bitset(0), bitset(25), bitset(span(0, 23, 1)...), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(span(0, 6, 1)...), true, true},
		{"*/15 9-17 1,15 jan-mar mon-fri", bitset(0), bitset(0, 15, 30, 45), bitset(span(9, 17, 1)...), bitset(1, 15), bitset(1, 2, 3), bitset(1, 2, 3, 4, 5), false, false},
		{"10-40/10 0/6 */10 */5 */2", bitset(0), bitset(10, 20, 30, 40), bitset(0, 6, 12, 18), bitset(1, 11, 21, 31), bitset(1, 6, 11), bitset(0, 2, 4, 6), false, false},
		{"0 0 ? * 7", bitset(0), bitset(0), bitset(0), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(0), true, false},
		{"0 0 1 * ?", bitset(0), bitset(0), bitset(0), bitset(1), bitset(span(1, 12, 1)...), bitset(span(0, 6, 1)...), false, true},
		{"0 0 * * 5-7", bitset(0), bitset(0), bitset(0), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(0, 5, 6), true, false},
		{"0 0 * * 0-7", bitset(0), bitset(0), bitset(0), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(span(0, 6, 1)...), true, false},
		{"0 0 * * 1/2", bitset(0), bitset(0), bitset(0), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(1, 3, 5), true, false},
		{"0 0 * * 7/3", bitset(0), bitset(0), bitset(0), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(0), true, false},
		{"30 */20 0 12 * * *", bitset(30), bitset(0, 20, 40), bitset(0), bitset(12), bitset(span(1, 12, 1)...), bitset(span(0, 6, 1)...), false, true},
		{"59/100 * * * *", bitset(0), bitset(59), bitset(span(0, 23, 1)...), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(span(0, 6, 1)...), true, true},
		{"*/99999999999 * * * *", bitset(0), bitset(0), bitset(span(0, 23, 1)...), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(span(0, 6, 1)...), true, true},
		{"007 00 * * *", bitset(0), bitset(7), bitset(0), bitset(span(1, 31, 1)...), bitset(span(1, 12, 1)...), bitset(span(0, 6, 1)...), true, true},
	}
	for _, tt := range tests {
		c := mustCron(t, tt.def)
		got := [6]uint64{c.second, c.minute, c.hour, c.dom, c.month, c.dow}
		want := [6]uint64{tt.second, tt.minute, tt.hour, tt.dom, tt.month, tt.dow}
		if got != want {
			t.Errorf("ParseCron(%q) sets (sec min hour dom month dow):\n got  %x\n want %x", tt.def, got, want)
		}
		if c.domStar != tt.domStar || c.dowStar != tt.dowStar {
			t.Errorf("ParseCron(%q) stars: got dom=%v dow=%v, want dom=%v dow=%v", tt.def, c.domStar, c.dowStar, tt.domStar, tt.dowStar)
		}
		if c.years != allYears {
			t.Errorf("ParseCron(%q) years: got %x, want all", tt.def, c.years)
		}
	}
}

func TestParseCronYears(t *testing.T) {
	tests := []struct {
		def   string
		years []int
	}{
		{"0 0 1 1 * 2030", []int{2030}},
		{"0 0 0 1 1 * 1970", []int{1970}},
		{"0 0 1 1 * 2099", []int{2099}},
		{"0 0 1 1 * 2030-2035/2", []int{2030, 2032, 2034}},
		{"0 0 1 1 * 2090/3", []int{2090, 2093, 2096, 2099}},
		{"0 0 1 1 * 2030,2040,2050", []int{2030, 2040, 2050}},
		{"0 0 1 1 * */50", []int{1970, 2020, 2070}},
		{"0 0 1 1 * 2030-2031,2098-2099", []int{2030, 2031, 2098, 2099}},
	}
	for _, tt := range tests {
		c := mustCron(t, tt.def)
		var want [3]uint64
		for _, y := range tt.years {
			want[(y-minYear)/64] |= 1 << ((y - minYear) % 64)
		}
		if c.years != want {
			t.Errorf("ParseCron(%q) years: got %x, want %x (%v)", tt.def, c.years, want, tt.years)
		}
	}
	all := mustCron(t, "* * * * *").years
	if want := [3]uint64{^uint64(0), ^uint64(0), 3}; all != want {
		t.Errorf("all years: got %x, want %x", all, want)
	}
}

// Equivalent definitions must parse to identical Cron values (Cron is
// comparable), which covers aliases, names, case, 7 == 0 and the 5/6/7-field
// forms without restating every bitset.
func TestParseCronEquivalent(t *testing.T) {
	groups := [][]string{
		{"@yearly", "@annually", "@YEARLY", "@Annually", "0 0 1 1 *", "0 0 1 1 * *", "0 0 0 1 1 * *", "0 0 1 jan *"},
		{"@monthly", "0 0 1 * *", "0 0 0 1 * * *", " @monthly "},
		{"@weekly", "0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN", "0 0 ? * Sun", "0 0 0 * * 0 *"},
		{"@daily", "@Daily", "0 0 * * *", "0 0 0 * * * *", "0 0 * * * *", "0 0 ? * *", "0 0 * * ?", "0\t0  *\n* *"},
		{"@hourly", "0 * * * *", "0 0 * * * * *"},
		{"* * * * 1-5", "* * * * mon-fri", "* * * * MON-Fri", "* * * * 1,2,3,4,5", "* * * * 1-2,3-5", "* * * * mon,tue,wed-fri"},
		{"* * * * 0,5,6", "* * * * 5-7", "* * * * fri-sat,sun", "* * * * 6,5,7,0"},
		{"* * * * */2", "* * * * 0,2,4,6", "* * * * sun/2", "* * * * 0-6/2"},
		{"* * * jan-mar *", "* * * 1-3 *", "* * * JAN,feb,Mar *", "* * * 1-3/1 *"},
		{"* * * */3 *", "* * * jan,apr,jul,oct *", "* * * 1/3 *", "* * * jan/3 *"},
		{"*/15 * * * *", "0,15,30,45 * * * *", "0-59/15 * * * *", "0/15 * * * *", "45,30,15,0 * * * *"},
		{"5/20 * * * *", "5,25,45 * * * *", "5-59/20 * * * *"},
		{"* * * * *", "* * * * * *", "0 * * * * * *", "00 * * * * * *", "0 */1 * * * * *", "0 0-59 * * * * 1970-2099"},
		{"* * * * * 2030", "0 * * * * * 2030", "0 */1 * * * * 2030-2030"},
		{"1-5/1 * * * *", "1,2,3,4,5 * * * *", "1-5 * * * *"},
		{"*/1 * * * * * *", "0-59 * * * * * *", "* * * * * * *"},
		{"0 12 * dec,DEC sun", "0 12 * 12 0", "0 12 * Dec 7"},
	}
	for _, g := range groups {
		first := mustCron(t, g[0])
		for _, def := range g[1:] {
			if c := mustCron(t, def); *c != *first {
				t.Errorf("ParseCron(%q) != ParseCron(%q):\n got  %+v\n want %+v", def, g[0], *c, *first)
			}
		}
	}
	// Unequal on purpose: only a bare "*" or "?" leaves a day field
	// unrestricted, so "*/1" selects the same weekdays as "*" but switches
	// on the OR rule.
	if a, b := mustCron(t, "0 0 1 * */1"), mustCron(t, "0 0 1 * *"); *a == *b || a.dow != b.dow {
		t.Errorf("\"0 0 1 * */1\" must select the same weekdays as \"0 0 1 * *\" but not be equal")
	}
}

func TestParseCronErrors(t *testing.T) {
	tests := []struct {
		def, want string
	}{
		{"", " is not a valid crontab string: improper number of cron entries specified; got 0 need 5 to 7"},
		{"* * * *", "* * * * is not a valid crontab string: improper number of cron entries specified; got 4 need 5 to 7"},
		{"*", "* is not a valid crontab string: improper number of cron entries specified; got 1 need 5 to 7"},
		{"* * * * * * * *", "* * * * * * * * is not a valid crontab string: improper number of cron entries specified; got 8 need 5 to 7"},
		{"  * * * *  ", "* * * * is not a valid crontab string: improper number of cron entries specified; got 4 need 5 to 7"},

		{"99 * * * *", "99 * * * * is not a valid crontab string: item value 99 out of range [0, 59]"},
		{"60 * * * *", "60 * * * * is not a valid crontab string: item value 60 out of range [0, 59]"},
		{"0099 * * * *", "0099 * * * * is not a valid crontab string: item value 99 out of range [0, 59]"},
		{"99999999999999999999 * * * *", "99999999999999999999 * * * * is not a valid crontab string: item value 99999999999999999999 out of range [0, 59]"},
		{"* 24 * * *", "* 24 * * * is not a valid crontab string: item value 24 out of range [0, 23]"},
		{"* * 0 * *", "* * 0 * * is not a valid crontab string: item value 0 out of range [1, 31]"},
		{"* * 32 * *", "* * 32 * * is not a valid crontab string: item value 32 out of range [1, 31]"},
		{"* * * 0 *", "* * * 0 * is not a valid crontab string: item value 0 out of range [1, 12]"},
		{"* * * 13 *", "* * * 13 * is not a valid crontab string: item value 13 out of range [1, 12]"},
		{"* * * * 8", "* * * * 8 is not a valid crontab string: item value 8 out of range [0, 7]"},
		{"* * * * * 1969", "* * * * * 1969 is not a valid crontab string: item value 1969 out of range [1970, 2099]"},
		{"* * * * * 2100", "* * * * * 2100 is not a valid crontab string: item value 2100 out of range [1970, 2099]"},
		{"60 * * * * * *", "60 * * * * * * is not a valid crontab string: item value 60 out of range [0, 59]"},
		{"0 60 * * * * *", "0 60 * * * * * is not a valid crontab string: item value 60 out of range [0, 59]"},
		{"0 0 0 * * * 3000", "0 0 0 * * * 3000 is not a valid crontab string: item value 3000 out of range [1970, 2099]"},
		{"1-60 * * * *", "1-60 * * * * is not a valid crontab string: item value 60 out of range [0, 59]"},
		{"1,2,77 * * * *", "1,2,77 * * * * is not a valid crontab string: item value 77 out of range [0, 59]"},
		{"99 * * * 8", "99 * * * 8 is not a valid crontab string: item value 99 out of range [0, 59]"}, // first field wins

		{"5-2 * * * *", "5-2 * * * * is not a valid crontab string: invalid range \"5-2\""},
		{"5-2/3 * * * *", "5-2/3 * * * * is not a valid crontab string: invalid range \"5-2\""},
		{"* * * * fri-mon", "* * * * fri-mon is not a valid crontab string: invalid range \"fri-mon\""},
		{"* * * * 7-1", "* * * * 7-1 is not a valid crontab string: invalid range \"7-1\""},
		{"* * * dec-jan *", "* * * dec-jan * is not a valid crontab string: invalid range \"dec-jan\""},
		{"* * * * * 2050-2040", "* * * * * 2050-2040 is not a valid crontab string: invalid range \"2050-2040\""},

		{"*/0 * * * *", "*/0 * * * * is not a valid crontab string: invalid step \"0\""},
		{"*/00 * * * *", "*/00 * * * * is not a valid crontab string: invalid step \"00\""},
		{"*/-1 * * * *", "*/-1 * * * * is not a valid crontab string: invalid step \"-1\""},
		{"*/x * * * *", "*/x * * * * is not a valid crontab string: invalid step \"x\""},
		{"*/+2 * * * *", "*/+2 * * * * is not a valid crontab string: invalid step \"+2\""},
		{"5/ * * * *", "5/ * * * * is not a valid crontab string: invalid step \"\""},
		{"1/2/3 * * * *", "1/2/3 * * * * is not a valid crontab string: invalid step \"2/3\""},
		{"1-5/0 * * * *", "1-5/0 * * * * is not a valid crontab string: invalid step \"0\""},
		{"* * * * */mon", "* * * * */mon is not a valid crontab string: invalid step \"mon\""},

		{"abc * * * *", "abc * * * * is not a valid crontab string: invalid item \"abc\""},
		{"-1 * * * *", "-1 * * * * is not a valid crontab string: invalid item \"-1\""},
		{"1- * * * *", "1- * * * * is not a valid crontab string: invalid item \"1-\""},
		{"1-x * * * *", "1-x * * * * is not a valid crontab string: invalid item \"1-x\""},
		{"1-2-3 * * * *", "1-2-3 * * * * is not a valid crontab string: invalid item \"1-2-3\""},
		{"*-5 * * * *", "*-5 * * * * is not a valid crontab string: invalid item \"*-5\""},
		{"/5 * * * *", "/5 * * * * is not a valid crontab string: invalid item \"/5\""},
		{"1,,2 * * * *", "1,,2 * * * * is not a valid crontab string: invalid item \"\""},
		{"1, * * * *", "1, * * * * is not a valid crontab string: invalid item \"\""},
		{"1.5 * * * *", "1.5 * * * * is not a valid crontab string: invalid item \"1.5\""},
		{"? * * * *", "? * * * * is not a valid crontab string: invalid item \"?\""},
		{"* * * ? *", "* * * ? * is not a valid crontab string: invalid item \"?\""},
		{"jan * * * *", "jan * * * * is not a valid crontab string: invalid item \"jan\""},
		{"* * * mon *", "* * * mon * is not a valid crontab string: invalid item \"mon\""},
		{"* * * * jan", "* * * * jan is not a valid crontab string: invalid item \"jan\""},
		{"* * * * january", "* * * * january is not a valid crontab string: invalid item \"january\""},
		{"* * * * monday", "* * * * monday is not a valid crontab string: invalid item \"monday\""},
		{"* * * * ſun", "* * * * ſun is not a valid crontab string: invalid item \"ſun\""},
		{"* * L * *", "* * L * * is not a valid crontab string: invalid item \"L\""},
		{"* * * * 5#3", "* * * * 5#3 is not a valid crontab string: invalid item \"5#3\""},
		{"* * * * * ?", "* * * * * ? is not a valid crontab string: invalid item \"?\""},
		{"* * * * * abc", "* * * * * abc is not a valid crontab string: invalid item \"abc\""},
		{"\"a * * * *", "\"a * * * * is not a valid crontab string: invalid item \"\\\"a\""},

		{"@sometimes", "@sometimes is not a valid crontab string: unknown alias \"@sometimes\""},
		{"@midnight", "@midnight is not a valid crontab string: unknown alias \"@midnight\""},
		{"@every 5m", "@every 5m is not a valid crontab string: unknown alias \"@every 5m\""},
		{"@daily extra", "@daily extra is not a valid crontab string: unknown alias \"@daily extra\""},
		{"@", "@ is not a valid crontab string: unknown alias \"@\""},
	}
	for _, tt := range tests {
		c, err := ParseCron(tt.def)
		if err == nil {
			t.Errorf("ParseCron(%q) = %+v, want error %q", tt.def, c, tt.want)
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("ParseCron(%q) error %T, want *ValidationError", tt.def, err)
			continue
		}
		if ve.Field != "cron_definition" {
			t.Errorf("ParseCron(%q) field = %q, want cron_definition", tt.def, ve.Field)
		}
		if ve.Message != tt.want || err.Error() != tt.want {
			t.Errorf("ParseCron(%q) message:\n got  %q\n want %q", tt.def, ve.Message, tt.want)
		}
	}
}

func TestCronNext(t *testing.T) {
	tests := []struct {
		name, def, from string
		want            []string // successive slots; the list ends where Next reports ok=false, unless open
		open            bool     // more slots follow the listed ones
	}{
		{"every minute", "* * * * *", "2026-03-10T10:07:30Z", []string{"2026-03-10T10:08:00Z", "2026-03-10T10:09:00Z"}, true},
		{"25 past", "25 * * * *", "2019-05-10T12:34:56.123456Z", []string{"2019-05-10T13:25:00Z", "2019-05-10T14:25:00Z"}, true},
		{"step", "*/15 * * * *", "2026-03-10T10:07:30Z", []string{"2026-03-10T10:15:00Z", "2026-03-10T10:30:00Z", "2026-03-10T10:45:00Z", "2026-03-10T11:00:00Z"}, true},
		{"strictly after", "0 0 * * *", "2026-01-01T00:00:00Z", []string{"2026-01-02T00:00:00Z"}, true},
		{"sub-second t", "0 0 * * *", "2026-01-01T00:00:00.5Z", []string{"2026-01-02T00:00:00Z"}, true},
		{"sub-second t before slot", "0 0 * * *", "2025-12-31T23:59:59.999999999Z", []string{"2026-01-01T00:00:00Z"}, true},
		{"every second", "* * * * * * *", "2026-01-01T10:00:00.7Z", []string{"2026-01-01T10:00:01Z", "2026-01-01T10:00:02Z"}, true},
		{"seconds field", "30 * * * * * *", "2026-01-01T10:00:30Z", []string{"2026-01-01T10:01:30Z", "2026-01-01T10:02:30Z"}, true},
		{"seconds list at noon", "*/20 0 12 * * * *", "2026-01-01T00:00:00Z", []string{"2026-01-01T12:00:00Z", "2026-01-01T12:00:20Z", "2026-01-01T12:00:40Z", "2026-01-02T12:00:00Z"}, true},
		{"year rollover", "0 0 * * *", "2026-12-31T23:59:59.999Z", []string{"2027-01-01T00:00:00Z"}, true},
		{"ranges and lists", "0 9-10 1,15 * *", "2026-01-01T09:30:00Z", []string{"2026-01-01T10:00:00Z", "2026-01-15T09:00:00Z", "2026-01-15T10:00:00Z", "2026-02-01T09:00:00Z"}, true},
		{"month names", "0 9 * jun mon", "2026-01-01T00:00:00Z", []string{"2026-06-01T09:00:00Z", "2026-06-08T09:00:00Z", "2026-06-15T09:00:00Z"}, true},

		{"year field 6", "0 0 1 1 * 2030", "2026-05-05T00:00:00Z", []string{"2030-01-01T00:00:00Z"}, false},
		{"year field 7", "15 30 6 1 1 * 2030,2031", "2026-05-05T00:00:00Z", []string{"2030-01-01T06:30:15Z", "2031-01-01T06:30:15Z"}, false},
		{"year in the past", "0 0 1 1 * 2020", "2026-05-05T00:00:00Z", nil, false},
		{"last year", "0 0 * * * 2099", "2099-12-30T12:00:00Z", []string{"2099-12-31T00:00:00Z"}, false},
		{"last second", "59 59 23 31 12 * 2099", "2099-12-31T23:58:00Z", []string{"2099-12-31T23:59:59Z"}, false},
		{"after 2099", "* * * * *", "2100-01-01T00:00:00Z", nil, false},
		{"far future", "* * * * *", "9999-01-01T00:00:00Z", nil, false},
		{"before 1970", "0 0 1 1 *", "1960-06-01T00:00:00Z", []string{"1970-01-01T00:00:00Z", "1971-01-01T00:00:00Z"}, true},
		{"just before 1970", "* * * * * * *", "1969-12-31T23:59:59.5Z", []string{"1970-01-01T00:00:00Z", "1970-01-01T00:00:01Z"}, true},
		{"far past", "0 0 1 1 * 1970", "0001-01-01T00:00:00Z", []string{"1970-01-01T00:00:00Z"}, false},

		{"leap day", "0 0 29 2 *", "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"}, true},
		{"leap day 2000", "0 0 29 2 *", "1999-01-01T00:00:00Z", []string{"2000-02-29T00:00:00Z", "2004-02-29T00:00:00Z"}, true},
		{"last leap day", "0 0 29 2 *", "2096-01-01T00:00:00Z", []string{"2096-02-29T00:00:00Z"}, false},
		{"feb 30", "0 0 30 2 *", "2026-01-01T00:00:00Z", nil, false},
		{"31 in short months", "0 0 31 4,6,9,11 *", "1970-01-01T00:00:00Z", nil, false},
		{"31st", "0 0 31 * *", "2026-01-31T00:00:00Z", []string{"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z", "2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z"}, true},
		{"30th skips feb", "0 0 30 * *", "2026-01-30T00:00:00Z", []string{"2026-03-30T00:00:00Z"}, true},

		// April 2026 starts on a Wednesday; its Fridays are 3, 10, 17, 24 and the 13th is a Monday.
		{"dom or dow", "0 0 13 * 5", "2026-04-01T00:00:00Z", []string{"2026-04-03T00:00:00Z", "2026-04-10T00:00:00Z", "2026-04-13T00:00:00Z", "2026-04-17T00:00:00Z", "2026-04-24T00:00:00Z", "2026-05-01T00:00:00Z"}, true},
		{"dow only", "0 0 * * 5", "2026-04-01T00:00:00Z", []string{"2026-04-03T00:00:00Z", "2026-04-10T00:00:00Z", "2026-04-17T00:00:00Z"}, true},
		{"dom only", "0 0 13 * *", "2026-04-01T00:00:00Z", []string{"2026-04-13T00:00:00Z", "2026-05-13T00:00:00Z"}, true},
		{"dom ? dow", "0 0 ? * 1", "2026-04-01T00:00:00Z", []string{"2026-04-06T00:00:00Z", "2026-04-13T00:00:00Z"}, true},
		{"dow step is restricted", "0 0 1 * */3", "2026-03-31T00:00:00Z", []string{"2026-04-01T00:00:00Z", "2026-04-04T00:00:00Z", "2026-04-05T00:00:00Z", "2026-04-08T00:00:00Z"}, true},
		{"dow */1 is restricted", "0 0 1 * */1", "2026-04-01T00:00:00Z", []string{"2026-04-02T00:00:00Z", "2026-04-03T00:00:00Z"}, true},
		{"dom */1 is restricted", "0 0 */1 * 1", "2026-04-01T00:00:00Z", []string{"2026-04-02T00:00:00Z", "2026-04-03T00:00:00Z"}, true},
		{"feb 30 or monday", "0 0 30 2 1", "2026-02-01T00:00:00Z", []string{"2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"}, true},
		{"weekday 7", "0 0 * * 7", "2026-04-01T00:00:00Z", []string{"2026-04-05T00:00:00Z", "2026-04-12T00:00:00Z"}, true},
		{"weekday 0", "0 0 * * 0", "2026-04-01T00:00:00Z", []string{"2026-04-05T00:00:00Z", "2026-04-12T00:00:00Z"}, true},
		{"weekdays", "0 8 * * mon-fri", "2026-04-03T09:00:00Z", []string{"2026-04-06T08:00:00Z", "2026-04-07T08:00:00Z"}, true},

		{"@yearly", "@yearly", "2026-06-01T00:00:00Z", []string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}, true},
		{"@monthly", "@monthly", "2026-06-01T00:00:00Z", []string{"2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z"}, true},
		{"@weekly", "@weekly", "2026-06-01T00:00:00Z", []string{"2026-06-07T00:00:00Z", "2026-06-14T00:00:00Z"}, true},
		{"@daily", "@daily", "2026-06-01T00:00:00Z", []string{"2026-06-02T00:00:00Z"}, true},
		{"@hourly", "@hourly", "2026-06-01T10:00:00Z", []string{"2026-06-01T11:00:00Z", "2026-06-01T12:00:00Z"}, true},
		{"6 fields all years", "* * * * * *", "2026-06-01T10:00:00Z", []string{"2026-06-01T10:01:00Z"}, true},

		{"non-UTC input", "0 12 * * *", "2026-06-01T13:30:00+02:00", []string{"2026-06-01T12:00:00Z"}, true},
		{"non-UTC input before", "0 12 * * *", "2026-06-01T13:30:00-02:00", []string{"2026-06-02T12:00:00Z"}, true},
		{"non-UTC input same day", "0 12 * * *", "2026-06-01T11:30:00+01:00", []string{"2026-06-01T12:00:00Z"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCron(t, tt.def)
			at := ts(t, tt.from)
			for i, w := range tt.want {
				got, ok := c.Next(at)
				if !ok || !got.Equal(ts(t, w)) || got.Location() != time.UTC {
					t.Fatalf("%q slot %d after %s: got %v ok=%v, want %s", tt.def, i, at, got, ok, w)
				}
				at = got
			}
			got, ok := c.Next(at)
			if ok != tt.open {
				t.Fatalf("%q after %s: got %v ok=%v, want ok=%v", tt.def, at, got, ok, tt.open)
			}
		})
	}
}

// TestCronNextMatchesReference checks Next against a slow reference on
// random definitions: the reference walks day by day and then second by
// second, and decides day matches with time.Weekday rather than the
// precomputed masks Next uses.
func TestCronNextMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 300
	if testing.Short() {
		n = 50
	}
	for range n {
		def := randomCron(r)
		c := mustCron(t, def)
		from := time.Date(2020+r.IntN(10), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1e9), time.UTC)
		for range 3 {
			got, ok := c.Next(from)
			want, wantOK := referenceNext(c, from)
			if ok != wantOK || !got.Equal(want) {
				t.Fatalf("%q Next(%s): got %v ok=%v, want %v ok=%v", def, from, got, ok, want, wantOK)
			}
			if !ok {
				break
			}
			from = got
		}
	}
}

func randomCron(r *rand.Rand) string {
	field := func(lo, hi int, names []string) string {
		pick := func() string {
			v := lo + r.IntN(hi-lo+1)
			if names != nil && r.IntN(3) == 0 && v-lo < len(names) {
				return names[v-lo]
			}
			return fmt.Sprint(v)
		}
		switch r.IntN(7) {
		case 0, 1:
			return "*"
		case 2:
			return pick()
		case 3:
			a, b := lo+r.IntN(hi-lo+1), lo+r.IntN(hi-lo+1)
			return fmt.Sprintf("%d-%d", min(a, b), max(a, b))
		case 4:
			return fmt.Sprintf("*/%d", 1+r.IntN(hi-lo+1))
		case 5:
			return fmt.Sprintf("%d/%d", lo+r.IntN(hi-lo+1), 1+r.IntN(10))
		default:
			parts := make([]string, 1+r.IntN(4))
			for i := range parts {
				parts[i] = pick()
			}
			return strings.Join(parts, ",")
		}
	}
	months := []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	days := []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	f := []string{
		field(0, 59, nil), field(0, 59, nil), field(0, 23, nil), field(1, 31, nil),
		field(1, 12, months), field(0, 7, days), field(2020, 2040, nil),
	}
	switch r.IntN(3) {
	case 0:
		return strings.Join(f[1:6], " ")
	case 1:
		return strings.Join(f[1:], " ")
	}
	return strings.Join(f, " ")
}

func has(set uint64, v int) bool { return set&(1<<v) != 0 }

func referenceNext(c *Cron, t time.Time) (time.Time, bool) {
	start := t.UTC().Truncate(time.Second).Add(time.Second)
	day := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
	for ; day.Year() <= maxYear; day = day.AddDate(0, 0, 1) {
		y := day.Year() - minYear
		if c.years[y/64]&(1<<(y%64)) == 0 || !has(c.month, int(day.Month())) {
			continue
		}
		domOK, dowOK := has(c.dom, day.Day()), has(c.dow, int(day.Weekday()))
		if c.domStar || c.dowStar {
			if !domOK || !dowOK {
				continue
			}
		} else if !domOK && !dowOK {
			continue
		}
		for s := day; s.Day() == day.Day(); s = s.Add(time.Second) {
			if !s.Before(start) && has(c.hour, s.Hour()) && has(c.minute, s.Minute()) && has(c.second, s.Second()) {
				return s, true
			}
			if !has(c.hour, s.Hour()) {
				s = s.Add(time.Hour - time.Duration(s.Minute())*time.Minute - time.Duration(s.Second()+1)*time.Second)
			}
		}
	}
	return time.Time{}, false
}

func BenchmarkCronNext(b *testing.B) {
	for _, def := range []string{"*/15 * * * *", "0 0 13 * 5", "0 0 29 2 *", "0 0 30 2 *", "30 */20 0 12 * * 2030-2040"} {
		c := mustCron(b, def)
		from := time.Date(2026, 5, 5, 10, 7, 30, 0, time.UTC)
		b.Run(def, func(b *testing.B) {
			for b.Loop() {
				c.Next(from)
			}
		})
	}
}
