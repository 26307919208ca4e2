package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ErrNotFound is matched (errors.Is) by the error of a request the
// registry answered with 404: an unknown repository, manifest or blob.
var ErrNotFound = errors.New("not found")

// ErrUnauthorized is matched by the error of a request the registry
// refused with 401 or 403 after authentication was tried.
var ErrUnauthorized = errors.New("unauthorized")

// Error is a registry's answer to a request that failed: its HTTP status
// and the error codes of the distribution spec's JSON body (MANIFEST_UNKNOWN,
// BLOB_UNKNOWN, UNAUTHORIZED, DENIED, …).
type Error struct {
	Method string
	URL    string
	Status int
	Codes  []ErrorCode
	// Body is the start of a body that was not the spec's JSON.
	Body string
}

// ErrorCode is one entry of the spec's error body.
type ErrorCode struct {
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", e.Method, e.URL, statusText(e.Status))
	for i, c := range e.Codes {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(c.Code)
		if c.Message != "" {
			b.WriteString(": " + c.Message)
		}
	}
	if len(e.Codes) == 0 && e.Body != "" {
		b.WriteString(": " + e.Body)
	}
	return b.String()
}

// Is makes errors.Is match ErrNotFound for 404 and ErrUnauthorized for
// 401 and 403.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	}
	return false
}

// HasCode reports whether the registry sent the error code code.
func (e *Error) HasCode(code string) bool {
	for _, c := range e.Codes {
		if c.Code == code {
			return true
		}
	}
	return false
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return fmt.Sprintf("%d %s", code, t)
	}
	return fmt.Sprintf("status %d", code)
}

// newError reads the error body of resp (at most 64 KiB) and closes it.
func newError(resp *http.Response) error {
	defer resp.Body.Close()
	e := &Error{Method: resp.Request.Method, URL: redact(resp.Request.URL.String()), Status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Errors []ErrorCode `json:"errors"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Errors) > 0 {
		e.Codes = body.Errors
	} else if s := strings.TrimSpace(string(data)); s != "" && resp.Request.Method != http.MethodHead {
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		e.Body = s
	}
	return e
}

// redact drops the query of a URL for error messages: upload URLs carry
// session state, and token URLs may carry more.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}
