package api

import "errors"

// Error is the body of every error answer: {"error": {"code", "message"}},
// with the head of a 409 conflict and the chain code of a refused link
// inside the error object and repeated at the top level. Error bodies are
// always JSON.
type Error struct {
	Error      ErrorDetail `json:"error"`
	Head       *Head       `json:"head,omitempty"`
	ChainError string      `json:"chain_error,omitempty"`
}

// ErrorDetail is the error object of an Error.
type ErrorDetail struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Head       *Head  `json:"head,omitempty"`
	ChainError string `json:"chain_error,omitempty"` // a chain.Code's wire name
}

// Validate checks that there is a code.
func (e Error) Validate() error {
	if e.Error.Code == "" {
		return errors.New("error answer without a code")
	}
	return nil
}
