package zuliptest

import (
	"fmt"
	"net/http"
)

// Error codes the simulator answers with, spelled as Zulip spells them in
// the "code" field of an error body.
const (
	CodeBadRequest        = "BAD_REQUEST"
	CodeBadEventQueueID   = "BAD_EVENT_QUEUE_ID"
	CodeUnauthorized      = "UNAUTHORIZED"
	CodeRateLimitHit      = "RATE_LIMIT_HIT"
	CodeBadNarrow         = "BAD_NARROW"
	CodeStreamNotExist    = "STREAM_DOES_NOT_EXIST"
	CodeVariableMissing   = "REQUEST_VARIABLE_MISSING"
	CodeVariableInvalid   = "REQUEST_VARIABLE_INVALID"
	CodeInvalidJSON       = "INVALID_JSON"
	codeInternalError     = "INTERNAL_SERVER_ERROR"
	basicAuthChallenge    = `Basic realm="zulip"`
	headerWWWAuthenticate = "WWW-Authenticate"
)

// apiError is a Zulip JsonableError: an HTTP status, a code, a message and
// the extra data fields some codes carry (BAD_EVENT_QUEUE_ID carries
// queue_id, STREAM_DOES_NOT_EXIST carries stream or stream_id, ...).
type apiError struct {
	status int
	code   string
	msg    string
	data   object
	header http.Header
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

// body lays the error out as upstream's json_response does:
// {"result":"error","msg":...} updated with the data fields, then "code".
func (e *apiError) body() object {
	o := object{{"result", "error"}, {"msg", e.msg}}
	o = append(o, e.data...)
	return o.with("code", e.code)
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// fieldError is a 400 with code and msg that carries one data field, key.
func fieldError(code, msg, key string, value any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: msg, data: object{{key, value}}}
}

func badEventQueueID(queueID string) *apiError {
	return fieldError(CodeBadEventQueueID, "Bad event queue ID: "+queueID, "queue_id", queueID)
}

func unauthorized(msg string) *apiError {
	return &apiError{
		status: http.StatusUnauthorized,
		code:   CodeUnauthorized,
		msg:    msg,
		header: http.Header{headerWWWAuthenticate: {basicAuthChallenge}},
	}
}

func missingArgument(name string) *apiError {
	return fieldError(CodeVariableMissing, fmt.Sprintf("Missing '%s' argument", name), "var_name", name)
}

func invalidArgument(name, why string) *apiError {
	msg := fmt.Sprintf("Invalid %s", name)
	if why != "" {
		msg += ": " + why
	}
	return fieldError(CodeVariableInvalid, msg, "var_name", name)
}

func streamNotExist(name string) *apiError {
	return fieldError(CodeStreamNotExist, fmt.Sprintf("Channel '%s' does not exist", name), "stream", name)
}

func streamIDNotExist(id int64) *apiError {
	return fieldError(CodeStreamNotExist, fmt.Sprintf("Channel with ID '%d' does not exist", id), "stream_id", id)
}

func badNarrow(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeBadNarrow, msg: fmt.Sprintf(format, args...)}
}
