package logs

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// TimeFormat is how docker logs --timestamps prints an entry's time:
// RFC 3339 with nanoseconds always nine digits wide, so columns line up.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Write prints e as docker logs does: its text, after "TIME " with
// timestamps and after the details (docker's --details, comma-joined)
// when there are any.
func Write(w io.Writer, e Entry, timestamps bool, details ...string) error {
	var b []byte
	if timestamps {
		b = e.Time.UTC().AppendFormat(b, TimeFormat)
		b = append(b, ' ')
	}
	if len(details) > 0 {
		b = append(b, strings.Join(details, ",")...)
		b = append(b, ' ')
	}
	b = append(b, e.Line...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write log entry: %w", err)
	}
	return nil
}

// zoned and local are the date forms ParseTime reads, with and without a
// zone; a time without one is in now's location, as docker takes it in
// the local zone.
var (
	zoned = []string{
		time.RFC3339Nano, // also reads no fraction
		"2006-01-02T15:04Z07:00",
	}
	local = []string{
		"2006-01-02T15:04:05.999999999",
		"2006-01-02T15:04",
		"2006-01-02",
	}
)

// ParseTime reads docker's --since and --until values: an RFC 3339 time
// (nanoseconds and zone optional), a date "2006-01-02", Unix seconds
// "1700000000" or "1700000000.123456789", or a duration such as "10m" or
// "1h30m", which is that long before now.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time value")
	}
	if d, err := time.ParseDuration(s); err == nil && s != "0" {
		return now.Add(-d), nil
	}
	if t, ok := parseUnix(s); ok {
		return t, nil
	}
	for _, layout := range zoned {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range local {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("failed to parse value as time or duration: %q", s)
}

// parseUnix reads seconds[.fraction] since the Unix epoch.
func parseUnix(s string) (time.Time, bool) {
	secs, frac, hasFrac := strings.Cut(s, ".")
	if secs == "" || strings.Trim(secs, "0123456789") != "" {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nsec int64
	if hasFrac {
		if frac == "" || len(frac) > 9 || strings.Trim(frac, "0123456789") != "" {
			return time.Time{}, false
		}
		frac += strings.Repeat("0", 9-len(frac))
		nsec, _ = strconv.ParseInt(frac, 10, 64)
	}
	return time.Unix(sec, nsec), true
}
