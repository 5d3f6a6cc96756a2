package source

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// zuliprc holds the [api] section of a zuliprc file, the credentials file of
// Zulip's official clients. Keys are lower case, as Python's ConfigParser
// (which reads it for the official client) makes them.
type zuliprc map[string]string

// parseZuliprc reads the [api] section of an INI file the way ConfigParser
// does for the files people actually write: "key=value" or "key: value",
// whitespace around both trimmed, '#' and ';' full-line comments, indented
// continuation lines, and no inline comments (a '#' inside a value is part
// of it, as in ConfigParser). Other sections are ignored.
func parseZuliprc(r io.Reader) (zuliprc, error) {
	out := zuliprc{}
	sc := bufio.NewScanner(r)
	section := ""
	lastKey := ""
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		if n == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff")
		}
		line := strings.TrimSpace(raw)
		switch {
		case line == "":
			lastKey = ""
			continue
		case line[0] == '#' || line[0] == ';':
			continue
		case raw[0] == ' ' || raw[0] == '\t':
			if lastKey == "" {
				return nil, fmt.Errorf("line %d: indented line continues no value", n)
			}
			if section == "api" {
				out[lastKey] += "\n" + line
			}
			continue
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: section header %q lacks a closing ']'", n, line)
			}
			section = strings.TrimSpace(line[1 : len(line)-1])
			lastKey = ""
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			// The line itself stays out of the message: it may be a pasted API key.
			return nil, fmt.Errorf("line %d: expected key=value", n)
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: key before any section header (expected [api] first)", n)
		}
		key := strings.ToLower(strings.TrimSpace(line[:i]))
		lastKey = key
		if section == "api" {
			out[key] = strings.TrimSpace(line[i+1:])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// parseIniBool accepts ConfigParser's boolean spellings.
func parseIniBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "yes", "true", "on":
		return true, true
	case "0", "no", "false", "off":
		return false, true
	}
	return false, false
}
