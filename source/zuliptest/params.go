package zuliptest

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxBodyBytes bounds a request body; the API calls simulated here carry a
// handful of short fields.
const maxBodyBytes = 8 << 20

// params are a request's parameters the way Django presents them to Zulip's
// views: the body (urlencoded or multipart, for every method, DELETE
// included) takes precedence over the query string.
type params struct {
	body  url.Values
	query url.Values
}

func parseParams(r *http.Request) (params, error) {
	p := params{body: url.Values{}, query: r.URL.Query()}
	if r.Body == nil {
		return p, nil
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return p, nil
	}
	mt, mtParams, err := mime.ParseMediaType(ct)
	if err != nil {
		return p, badRequest("Malformed Content-Type header")
	}
	body := io.LimitReader(r.Body, maxBodyBytes)
	switch mt {
	case "application/x-www-form-urlencoded":
		raw, err := io.ReadAll(body)
		if err != nil {
			return p, badRequest("Could not read request body")
		}
		v, err := url.ParseQuery(string(raw))
		if err != nil {
			return p, badRequest("Malformed form-encoded body")
		}
		p.body = v
	case "multipart/form-data":
		boundary := mtParams["boundary"]
		if boundary == "" {
			return p, badRequest("Malformed multipart body: no boundary")
		}
		mr := multipart.NewReader(body, boundary)
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return p, badRequest("Malformed multipart body")
			}
			value, err := io.ReadAll(part)
			part.Close()
			if err != nil {
				return p, badRequest("Malformed multipart body")
			}
			if name := part.FormName(); name != "" && part.FileName() == "" {
				p.body.Add(name, string(value))
			}
		}
	}
	return p, nil
}

// lookup returns the parameter's value and whether it was given.
func (p params) lookup(name string) (string, bool) {
	if v, ok := p.body[name]; ok && len(v) > 0 {
		return v[0], true
	}
	if v, ok := p.query[name]; ok && len(v) > 0 {
		return v[0], true
	}
	return "", false
}

func (p params) str(name string) string {
	v, _ := p.lookup(name)
	return v
}

// reader reads a call's parameters one after another and keeps the first
// problem, so that a handler reads them all and answers once: after a
// problem the reads read nothing and return the zero value (or the
// default), and err is the error to answer with.
type reader struct {
	p   params
	err *apiError
}

func (p params) reader() *reader { return &reader{p: p} }

// fail records e as the problem unless there is one already (or e is nil).
func (r *reader) fail(e *apiError) {
	if r.err == nil && e != nil {
		r.err = e
	}
}

// lookup is params.lookup, reading nothing after a problem.
func (r *reader) lookup(name string) (string, bool) {
	if r.err != nil {
		return "", false
	}
	return r.p.lookup(name)
}

// required is a parameter that must be given (REQUEST_VARIABLE_MISSING).
func (r *reader) required(name string) string {
	v, ok := r.lookup(name)
	if !ok {
		r.fail(missingArgument(name))
	}
	return v
}

// boolean parses a Zulip Json[bool]: the JSON literals true and false.
// Python's json also accepts surrounding whitespace; so do we.
func (r *reader) boolean(name string, def bool) bool {
	v, ok := r.lookup(name)
	if !ok {
		return def
	}
	switch strings.TrimSpace(v) {
	case "true":
		return true
	case "false":
		return false
	}
	r.fail(invalidArgument(name, "not a JSON boolean"))
	return false
}

// integer parses a Json[int] parameter, and says whether it was given.
func (r *reader) integer(name string) (int64, bool) {
	v, ok := r.lookup(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		r.fail(invalidArgument(name, "not an integer"))
		return 0, true
	}
	return n, true
}

// requiredInteger is a Json[int] parameter that must be given.
func (r *reader) requiredInteger(name string) int64 {
	n, ok := r.integer(name)
	if !ok {
		r.fail(missingArgument(name))
	}
	return n
}

// jsonValue decodes a parameter that carries JSON into dst, and says
// whether it was given.
func (r *reader) jsonValue(name string, dst any) bool {
	v, ok := r.lookup(name)
	if !ok {
		return false
	}
	if err := json.Unmarshal([]byte(v), dst); err != nil {
		r.fail(fieldError(CodeInvalidJSON, name+" is not valid JSON", "var_name", name))
	}
	return true
}
