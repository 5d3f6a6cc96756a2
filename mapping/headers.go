package mapping

import "unicode/utf8"

// appendHeaderValue appends v as a header value: control characters (C0,
// DEL, C1) removed, since a line break in a value would end the header on
// the wire; invalid UTF-8 replaced by U+FFFD; everything else, non-ASCII
// included, kept.
func appendHeaderValue(dst, v []byte) []byte {
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != 0x7f {
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		case r >= 0x80 && r <= 0x9f:
		default:
			dst = append(dst, v[i:i+size]...)
		}
		i += size
	}
	return dst
}

// appendHeaderStr appends a JSON string as a header value.
func appendHeaderStr(dst []byte, s str) []byte {
	if !s.esc {
		return appendHeaderValue(dst, s.raw)
	}
	var buf [128]byte
	return appendHeaderValue(dst, s.appendTo(buf[:0]))
}

// appendPercentEncoded appends v encoded as the CloudEvents NATS binding
// requires of attribute header values: space, '"', '%' and every byte
// outside printable ASCII as %XY.
func appendPercentEncoded(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c > ' ' && c < 0x7f && c != '"' && c != '%' {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xF])
		}
	}
	return dst
}

// appendJSONString appends v as a JSON string.
func appendJSONString(dst []byte, v string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', upperHex[c>>4], upperHex[c&0xF])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
