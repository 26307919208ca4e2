package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// The distribution spec's error codes.
const (
	CodeBlobUnknown         = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       = "DIGEST_INVALID"
	CodeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     = "MANIFEST_INVALID"
	CodeManifestUnknown     = "MANIFEST_UNKNOWN"
	CodeNameInvalid         = "NAME_INVALID"
	CodeNameUnknown         = "NAME_UNKNOWN"
	CodeSizeInvalid         = "SIZE_INVALID"
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeDenied              = "DENIED"
	CodeUnsupported         = "UNSUPPORTED"
	CodeTooManyRequests     = "TOOMANYREQUESTS"
	CodeRangeInvalid        = "RANGE_INVALID"
)

// regError is a request the server refuses: an HTTP status and one entry
// of the spec's error body.
type regError struct {
	Status  int
	Code    string
	Message string
	Detail  any
}

func (e *regError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, message string, detail any) *regError {
	return &regError{Status: status, Code: code, Message: message, Detail: detail}
}

// errorBody is the spec's JSON error body.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError writes err as the spec's JSON error: a *regError or an
// *AuthError with its status, anything else as a 500.
func writeError(w http.ResponseWriter, err error) {
	var re *regError
	var ae *AuthError
	switch {
	case errors.As(err, &re):
	case errors.As(err, &ae):
		status := ae.Status
		if status == 0 {
			status = http.StatusUnauthorized
		}
		code := ae.Code
		if code == "" {
			code = CodeUnauthorized
			if status == http.StatusForbidden {
				code = CodeDenied
			}
		}
		if ae.Challenge != "" {
			w.Header().Set("WWW-Authenticate", ae.Challenge)
		}
		re = errorf(status, code, ae.Message, nil)
	default:
		re = errorf(http.StatusInternalServerError, "UNKNOWN", err.Error(), nil)
	}
	b, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: re.Code, Message: re.Message, Detail: re.Detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(re.Status)
	w.Write(b)
}
