package webpubsub

/*
#include "webpubsub_client.h"
*/
import "C"

import (
	"context"
	"fmt"
)

// Error is the error every operation of this package returns (as *Error).
type Error struct {
	// Code is the library's result code (WPS_ERR_*, see include/webpubsub_client.h):
	// 100-199 a wrong call, 200-299 transient, 300-399 connection set-up, 400-499 the service
	// rejected the operation, 500-599 lifecycle. 0 when the operation ended because its
	// context was done (see Unwrap).
	Code int32
	// ServiceError is the service's error name ("Forbidden", "InternalServerError", ...) for
	// a rejected operation, else "".
	ServiceError string
	// Message is the library's detail message.
	Message string
	// AckID is the operation's ack id (0 when it has none). Retrying with the same ack id
	// (SendOption AckID) lets the service deduplicate it.
	AckID uint64
	// Op names the operation ("join group", "send to group", ...).
	Op string

	cause error // the context's error when the context ended the wait
}

func (e *Error) Error() string {
	msg := "webpubsub: " + e.Op
	if e.cause != nil {
		msg += ": " + e.cause.Error()
	} else {
		msg += ": " + C.GoString(C.wps_result_name(C.int32_t(e.Code)))
		if e.ServiceError != "" {
			msg += " (" + e.ServiceError + ")"
		}
		if e.Message != "" {
			msg += ": " + e.Message
		}
	}
	if e.AckID != 0 {
		msg += fmt.Sprintf(" [ack id %d]", e.AckID)
	}
	return msg
}

// Retryable reports whether trying the same operation again, with the same AckID, may
// succeed: a timeout, a lost connection, the service's InternalServerError, or a context
// that ended before the outcome was known.
func (e *Error) Retryable() bool {
	if e.cause != nil {
		return true
	}
	return bool(C.wps_result_is_retryable(C.int32_t(e.Code)))
}

// Unwrap gives the context's error (context.Canceled or context.DeadlineExceeded) when the
// context ended the operation's wait; nil otherwise.
func (e *Error) Unwrap() error { return e.cause }

// Is makes errors.Is(err, ErrForbidden) and the other sentinels work.
func (e *Error) Is(target error) bool {
	s, ok := target.(*sentinel)
	if !ok {
		return false
	}
	if s.low == s.high {
		return e.Code == s.low
	}
	return e.Code >= s.low && e.Code <= s.high
}

// sentinel is a class of result codes, matched by (*Error).Is.
type sentinel struct {
	low, high int32
	text      string
}

func (s *sentinel) Error() string { return "webpubsub: " + s.text }

// Sentinel errors for errors.Is. Every failure is an *Error; these match its Code.
var (
	ErrInvalidArgument     error = &sentinel{C.WPS_ERR_NULL_ARG, C.WPS_ERR_INVALID_UTF8, "invalid argument"}
	ErrInvalidURL          error = &sentinel{C.WPS_ERR_INVALID_URL, C.WPS_ERR_INVALID_URL, "invalid client access URL"}
	ErrInvalidState        error = &sentinel{C.WPS_ERR_INVALID_STATE, C.WPS_ERR_INVALID_STATE, "invalid state"}
	ErrPayloadTooLarge     error = &sentinel{C.WPS_ERR_PAYLOAD_TOO_LARGE, C.WPS_ERR_PAYLOAD_TOO_LARGE, "payload too large"}
	ErrTimeout             error = &sentinel{C.WPS_ERR_TIMEOUT, C.WPS_ERR_TIMEOUT, "timeout"}
	ErrNotConnected        error = &sentinel{C.WPS_ERR_NOT_CONNECTED, C.WPS_ERR_NOT_CONNECTED, "not connected"}
	ErrConnection          error = &sentinel{C.WPS_ERR_CONNECTION, C.WPS_ERR_CONNECTION, "connection failed"}
	ErrHandshake           error = &sentinel{300, 399, "connection set-up failed"}
	ErrUnauthorized        error = &sentinel{C.WPS_ERR_UNAUTHORIZED, C.WPS_ERR_UNAUTHORIZED, "unauthorized"}
	ErrURLProvider         error = &sentinel{C.WPS_ERR_URL_PROVIDER, C.WPS_ERR_URL_PROVIDER, "URL provider failed"}
	ErrService             error = &sentinel{400, 499, "rejected by the service"}
	ErrForbidden           error = &sentinel{C.WPS_ERR_ACK_FORBIDDEN, C.WPS_ERR_ACK_FORBIDDEN, "forbidden"}
	ErrInternalServerError error = &sentinel{C.WPS_ERR_ACK_INTERNAL_SERVER_ERROR, C.WPS_ERR_ACK_INTERNAL_SERVER_ERROR, "internal server error"}
	ErrBadRequest          error = &sentinel{C.WPS_ERR_ACK_BAD_REQUEST, C.WPS_ERR_ACK_BAD_REQUEST, "bad request"}
	ErrCancelled           error = &sentinel{C.WPS_ERR_CANCELLED, C.WPS_ERR_CANCELLED, "cancelled (client stopped or closed)"}
	// ErrClosed: the Client was closed.
	ErrClosed error = &sentinel{C.WPS_ERR_INVALID_HANDLE, C.WPS_ERR_INVALID_HANDLE, "client closed"}
)

func newError(op string, code int32, service, message string, ackID uint64) *Error {
	return &Error{Code: code, ServiceError: service, Message: message, AckID: ackID, Op: op}
}

func ctxError(op string, ctx context.Context, ackID uint64) *Error {
	return &Error{Op: op, AckID: ackID, cause: ctx.Err()}
}

// deadlineError: the library's timeout, derived from the context's deadline, ended the
// operation (just before the context itself would have).
func deadlineError(op string, ackID uint64) *Error {
	return &Error{Op: op, Code: C.WPS_ERR_TIMEOUT, AckID: ackID, cause: context.DeadlineExceeded}
}
