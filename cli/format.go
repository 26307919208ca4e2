package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
)

// humanSize formats a size in bytes the way docker does: decimal units,
// three significant digits ("4.26MB").
func humanSize(size int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(size)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

// humanDuration formats d the way docker's CREATED column does
// ("2 minutes", "About an hour").
func humanDuration(d time.Duration) string {
	if s := int(d.Seconds()); s < 1 {
		return "Less than a second"
	} else if s == 1 {
		return "1 second"
	} else if s < 60 {
		return fmt.Sprintf("%d seconds", s)
	} else if m := int(d.Minutes()); m == 1 {
		return "About a minute"
	} else if m < 60 {
		return fmt.Sprintf("%d minutes", m)
	} else if h := int(math.Round(d.Hours())); h == 1 {
		return "About an hour"
	} else if h < 48 {
		return fmt.Sprintf("%d hours", h)
	} else if h < 24*7*2 {
		return fmt.Sprintf("%d days", h/24)
	} else if h < 24*30*2 {
		return fmt.Sprintf("%d weeks", h/24/7)
	} else if h < 24*365*2 {
		return fmt.Sprintf("%d months", h/24/30)
	} else {
		return fmt.Sprintf("%d years", int(d.Hours())/24/365)
	}
}

func since(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	return humanDuration(time.Since(t)) + " ago"
}

// templateFuncs are the functions --format templates may call, as in
// docker's.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"join":  strings.Join,
	"split": strings.Split,
	"truncate": func(s string, n int) string {
		if n >= 0 && len(s) > n {
			return s[:n]
		}
		return s
	},
}

// templateT is a parsed --format template.
type templateT = template.Template

// parseFormat parses a --format Go template. As docker does, a leading
// "table " asks for aligned columns with a header row, and the two
// characters \t stand for a tab.
func parseFormat(format string) (*template.Template, error) {
	text := strings.ReplaceAll(strings.TrimPrefix(format, "table "), `\t`, "\t")
	t, err := template.New("format").Funcs(templateFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("--format: %w", err)
	}
	return t, nil
}

// writeTemplate writes one line per item, executing t on row(item); with
// table, the columns are aligned and headed by t executed on headers.
func writeTemplate[T any](w io.Writer, t *template.Template, table bool, headers any, items []T, row func(T) any) error {
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		out = tw
		if err := t.Execute(out, headers); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(out)
	}
	for _, item := range items {
		if err := t.Execute(out, row(item)); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(out)
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// writeInspect prints inspect's result: each item through the --format
// template t (which sees the item as its JSON form, so templates use
// docker's field names), or, without t, the items as one indented JSON
// array, as docker's inspect commands do.
func writeInspect[T any](w io.Writer, t *template.Template, items []T) error {
	if t == nil {
		if items == nil {
			items = []T{}
		}
		b, err := json.MarshalIndent(items, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	for _, v := range items {
		var m any
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		if err := t.Execute(w, m); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(w)
	}
	return nil
}
