package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/enigm/enigm/api"
	"github.com/enigm/enigm/chain"
	"github.com/enigm/enigm/command/store"
)

// apiError is an error response: an HTTP status and a stable code
// (docs/design/command-api.md).
type apiError struct {
	status  int
	code    string
	msg     string
	head    *api.Head // 409 conflict: the current head
	chain   string    // 422 chain_rejected: the chain code's wire name
	retryIn int       // 429: seconds for Retry-After
	cause   error     // logged, never sent
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "bad_request", format, args...)
}

func notFound(format string, args ...any) *apiError {
	return errorf(http.StatusNotFound, "not_found", format, args...)
}

func forbidden(format string, args ...any) *apiError {
	return errorf(http.StatusForbidden, "forbidden", format, args...)
}

func unauthorized(format string, args ...any) *apiError {
	return errorf(http.StatusUnauthorized, "unauthorized", format, args...)
}

func policyRejected(format string, args ...any) *apiError {
	return errorf(http.StatusUnprocessableEntity, "policy_rejected", format, args...)
}

func conflict(head store.Head, format string, args ...any) *apiError {
	e := errorf(http.StatusConflict, "conflict", format, args...)
	h := headOf(head)
	e.head = &h
	return e
}

func expired(format string, args ...any) *apiError {
	return errorf(http.StatusGone, "expired", format, args...)
}

// chainRejected reports a link that does not verify, naming the chain code
// it wraps.
func chainRejected(err error) *apiError {
	e := errorf(http.StatusUnprocessableEntity, "chain_rejected", "%v", err)
	e.chain = chainErrorName(err)
	return e
}

// internal reports an unexpected failure; the cause is logged, not sent.
func internal(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: "internal", msg: "internal server error (see the server log)", cause: err}
}

// missingAs answers a failed read of one row: missing when the store has
// no such row (store.ErrNotFound), storeErr(err) for any other failure.
func missingAs(err error, missing *apiError) *apiError {
	if errors.Is(err, store.ErrNotFound) {
		return missing
	}
	return storeErr(err)
}

// storeErr maps a store error that the handler did not expect in its own
// terms: an unreachable database is 503 unavailable, anything else 500.
func storeErr(err error) *apiError {
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "the database is unreachable; nothing was accepted, try again", cause: err}
	case errors.Is(err, store.ErrNotFound):
		return notFound("%v", err)
	case errors.Is(err, context.Canceled):
		// The client went away; nothing was committed.
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "the request was cancelled; nothing was accepted"}
	}
	var ce *inconsistentError
	if errors.As(err, &ce) {
		return &apiError{status: http.StatusInternalServerError, code: "store_inconsistent",
			msg: fmt.Sprintf("the database is inconsistent for account %s (%v); the server refuses to serve or extend the account until an operator restores the database", ce.account, ce.err), cause: err}
	}
	var ie *integrityError
	if errors.As(err, &ie) {
		return &apiError{status: http.StatusInternalServerError, code: "integrity",
			msg: fmt.Sprintf("the stored chain of account %s fails the server's own verification (%v); the server refuses to serve or extend it", ie.account, ie.err), cause: err}
	}
	return internal(err)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryIn > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryIn))
	}
	writeJSON(w, e.status, api.Error{
		Error: api.ErrorDetail{Code: e.code, Message: e.msg, Head: e.head, ChainError: e.chain},
		Head:  e.head, ChainError: e.chain,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding the response failed"}}`)
	}
	w.Header().Set("Content-Type", api.MediaJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// chainErrorName returns the wire name of the chain code err wraps (e.g.
// "no_device_approval", see chain.Code), or "" when it wraps none.
func chainErrorName(err error) string {
	if c, ok := chain.CodeOf(err); ok {
		return c.String()
	}
	return ""
}
