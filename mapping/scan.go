package mapping

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/zulip-bridge/zulip-bridge/source"
)

// This file is a minimal JSON reader: it walks an event once, validating
// all of it as encoding/json would, and keeps only the handful of members
// that names, keys and headers are made of. Values are kept as positions in
// the input and decoded only when used, so an event costs no maps, no
// reflection and almost no allocations.

// maxDepth bounds nesting as encoding/json does, so that ten megabytes of
// '[' cost an error instead of the goroutine's stack.
const maxDepth = 10000

// str is a JSON string found in the input: the bytes between the quotes,
// still escaped when esc is set.
type str struct {
	raw []byte
	esc bool
	ok  bool // present and a string
}

// appendTo appends the decoded string to dst.
func (s str) appendTo(dst []byte) []byte {
	if !s.esc {
		return append(dst, s.raw...)
	}
	return unescape(dst, s.raw)
}

// is reports whether s is present and decodes to lit.
func (s str) is(lit string) bool {
	if !s.ok {
		return false
	}
	if !s.esc {
		return string(s.raw) == lit
	}
	var buf [32]byte
	return string(unescape(buf[:0], s.raw)) == lit
}

// String returns the decoded string.
func (s str) String() string {
	if !s.esc {
		return string(s.raw)
	}
	return string(unescape(make([]byte, 0, len(s.raw)), s.raw))
}

// num is a JSON number that is a non-negative integer fitting in int64;
// any other value of the member leaves ok false.
type num struct {
	v  int64
	ok bool
}

// orZero returns the number, or 0 when the member is absent or not a
// non-negative integer (v is then meaningless).
func (n num) orZero() int64 {
	if !n.ok {
		return 0
	}
	return n.v
}

// plain marks the bytes that may appear unescaped inside a JSON string
// without ending it. Bytes >= 0x80 pass: like encoding/json, the reader
// does not reject invalid UTF-8, it is dealt with where a value is used.
var plain = func() (t [256]bool) {
	for i := 0x20; i < 256; i++ {
		t[i] = i != '"' && i != '\\'
	}
	return t
}()

// specialIn8 reports whether any of the eight bytes of x is one that is not
// plain: '"', '\\' or a control character (< 0x20). Each test is exact as
// a whole: a byte's borrow only reaches bytes above one that matched.
func specialIn8(x uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := x ^ ('"' * ones)
	b := x ^ ('\\' * ones)
	return ((q-ones)&^q|(b-ones)&^b|(x-0x20*ones)&^x)&highs != 0
}

type scanner struct {
	data []byte
	pos  int
	// jumps lists values of data known to be well formed (source's
	// Event.Skipped), in increasing order: skip steps over one that
	// starts where it is asked to skip, instead of scanning it.
	jumps []source.Span
	// member is the offset of the opening quote of the member name that
	// object has just read, for callers that cut members out.
	member int
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: byte %d: %s", ErrInvalidEvent, s.pos, fmt.Sprintf(format, args...))
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end of the input.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of input, want %q", c)
		}
		return s.errorf("unexpected %q, want %q", s.data[s.pos], c)
	}
	s.pos++
	return nil
}

// end checks that nothing but whitespace follows the value just read.
func (s *scanner) end() error {
	if s.peek() != 0 {
		return s.errorf("unexpected %q after the top-level value", s.data[s.pos])
	}
	return nil
}

// str reads the string that starts at s.pos.
func (s *scanner) str() (str, error) {
	d := s.data
	i := s.pos + 1
	esc := false
	for {
		// Eight bytes at a time while none of them is special, then byte
		// by byte up to the one that is.
		for i+8 <= len(d) && !specialIn8(binary.LittleEndian.Uint64(d[i:])) {
			i += 8
		}
		for i < len(d) && plain[d[i]] {
			i++
		}
		if i >= len(d) {
			s.pos = i
			return str{}, s.errorf("unterminated string")
		}
		switch c := d[i]; c {
		case '"':
			v := str{raw: d[s.pos+1 : i], esc: esc, ok: true}
			s.pos = i + 1
			return v, nil
		case '\\':
			esc = true
			if i+1 >= len(d) {
				s.pos = i
				return str{}, s.errorf("unterminated string")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex4(d[i+2:i+6]) {
					s.pos = i
					return str{}, s.errorf(`invalid \u escape`)
				}
				i += 6
			default:
				s.pos = i
				return str{}, s.errorf("invalid escape %q", d[i+1])
			}
		default:
			s.pos = i
			return str{}, s.errorf("control character %#02x in string", c)
		}
	}
}

// number reads the number that starts at s.pos, strictly by the JSON
// grammar, and returns it as an integer when it is a non-negative one that
// fits in int64.
func (s *scanner) number() (num, error) {
	d := s.data
	i := s.pos
	neg := i < len(d) && d[i] == '-'
	if neg {
		i++
	}
	var v int64
	integer, overflow := true, false
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for ; i < len(d) && d[i] >= '0' && d[i] <= '9'; i++ {
			digit := int64(d[i] - '0')
			if v > (1<<63-1-digit)/10 {
				overflow = true
			}
			v = v*10 + digit
		}
	default:
		s.pos = i
		return num{}, s.errorf("invalid number")
	}
	if i < len(d) && d[i] == '.' {
		integer = false
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return num{}, s.errorf("invalid number")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		integer = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return num{}, s.errorf("invalid number")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return num{v: v, ok: integer && !overflow && (!neg || v == 0)}, nil
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.errorf("invalid literal, want %s", word)
	}
	s.pos += len(word)
	return nil
}

// skip reads and validates one value of any kind.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.errorf("nested deeper than %d", maxDepth)
	}
	c := s.peek()
	if len(s.jumps) > 0 && s.jump() {
		return nil
	}
	switch {
	case c == '{':
		return s.object(depth, func([]byte) error { return s.skip(depth + 1) })
	case c == '[':
		return s.array(depth, func(int) error { return s.skip(depth + 1) })
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		_, err := s.number()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == 0:
		return s.errorf("unexpected end of input, want a value")
	default:
		return s.errorf("unexpected %q, want a value", c)
	}
}

// jump steps over the value at s.pos if it is the next of s.jumps, and
// forgets the jumps it has passed.
func (s *scanner) jump() bool {
	for len(s.jumps) > 0 && int(s.jumps[0].Start) < s.pos {
		s.jumps = s.jumps[1:]
	}
	if len(s.jumps) == 0 || int(s.jumps[0].Start) != s.pos || int(s.jumps[0].End) > len(s.data) {
		return false
	}
	s.pos = int(s.jumps[0].End)
	s.jumps = s.jumps[1:]
	return true
}

// object reads the object at s.pos, calling member with each decoded key;
// member must consume the value.
func (s *scanner) object(depth int, member func(key []byte) error) error {
	if depth > maxDepth {
		return s.errorf("nested deeper than %d", maxDepth)
	}
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.errorf("want a member name")
		}
		s.member = s.pos
		k, err := s.str()
		if err != nil {
			return err
		}
		key := k.raw
		if k.esc {
			// Rare: Zulip escapes no member name. A stack buffer would
			// not help, member is called indirectly so key escapes.
			key = unescape(nil, k.raw)
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or '}' after an object member")
		}
	}
}

// array reads the array at s.pos, calling elem with each element's index;
// elem must consume the element.
func (s *scanner) array(depth int, elem func(i int) error) error {
	if depth > maxDepth {
		return s.errorf("nested deeper than %d", maxDepth)
	}
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or ']' after an array element")
		}
	}
}

// readStr reads a value into dst if it is a string, and skips it otherwise:
// a member of the wrong type counts as absent.
func (s *scanner) readStr(depth int, dst *str) error {
	if s.peek() != '"' {
		*dst = str{}
		return s.skip(depth)
	}
	v, err := s.str()
	*dst = v
	return err
}

// readNum reads a value into dst if it is a non-negative integer, and
// skips it otherwise.
func (s *scanner) readNum(depth int, dst *num) error {
	if c := s.peek(); c == '-' || c >= '0' && c <= '9' {
		v, err := s.number()
		*dst = v
		return err
	}
	*dst = num{}
	return s.skip(depth)
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hexVal(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape appends the decoded form of a string body that str already
// validated. Lone surrogates become U+FFFD, as in encoding/json.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hexVal(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2 = hexVal(raw[i+2 : i+6])
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}
