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

// boolean parses a Zulip Json[bool]: the JSON literals true and false.
// Python's json also accepts surrounding whitespace; so do we.
func (p params) boolean(name string, def bool) (bool, *apiError) {
	v, ok := p.lookup(name)
	if !ok {
		return def, nil
	}
	switch strings.TrimSpace(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, invalidArgument(name, "not a JSON boolean")
}

// integer parses a Json[int] parameter.
func (p params) integer(name string) (int64, bool, *apiError) {
	v, ok := p.lookup(name)
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, true, invalidArgument(name, "not an integer")
	}
	return n, true, nil
}

// jsonValue decodes a parameter that carries JSON into dst.
func (p params) jsonValue(name string, dst any) (bool, *apiError) {
	v, ok := p.lookup(name)
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal([]byte(v), dst); err != nil {
		return true, &apiError{
			status: http.StatusBadRequest,
			code:   CodeInvalidJSON,
			msg:    name + " is not valid JSON",
			data:   object{{"var_name", name}},
		}
	}
	return true, nil
}
