package mapping

import (
	"encoding/json"
	"testing"
)

// TestScannerAgreesWithEncodingJSON: the scanner accepts exactly the JSON
// values encoding/json accepts, and decodes strings as it does.
func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	values := []string{
		`0`, `-0`, `1`, `-1`, `10`, `01`, `-01`, `-`, `+1`, `1.`, `1.5`, `.5`, `1.e1`, `1e`, `1e+`, `1e-2`,
		`1E5`, `1.5e+10`, `-0.0e-0`, `1ee2`, `0x10`, `Infinity`, `NaN`,
		`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\ud83c\udf55"`,
		`"\ud800"`, `"\udc00\ud800"`, `"\u12"`, `"\u12g4"`, `"\x41"`, `"\'"`, `"a` + "\x01" + `"`, `"a` + "\x7f" + `"`,
		"\"\xff\"", "\"\xc3\xa9\"", `"unterminated`, `"\`,
		`true`, `false`, `null`, `tru`, `nul`, `True`, `truex`,
		`[]`, `[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `[`, `]`, `[[[]]]`, `[{}]`,
		`{}`, `{"a":1}`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a" : [ 1 , { } ] }`, `{1:2}`,
		` 1 `, "\t\n\r[ ]", "\v1", "\u00a01",
	}
	for _, v := range values {
		ev := []byte(`{"type":"x","id":1,"v":` + v + `}`)
		_, err := peek(ev)
		if valid := json.Valid(ev); valid != (err == nil) {
			t.Errorf("%s: json.Valid %v, scanner error %v", v, valid, err)
		}
	}

	// Strings as the topic of a stream message: the header is what
	// encoding/json decodes, less control characters.
	m := newMapper(t, Config{})
	for _, v := range values {
		var want string
		if json.Unmarshal([]byte(v), &want) != nil {
			continue
		}
		ev := []byte(`{"type":"typing","id":1,"message_type":"stream","stream_id":1,"topic":` + v + `}`)
		msg, err := m.Map(ev, testQueue)
		if err != nil {
			t.Errorf("%s: %v", v, err)
			continue
		}
		got, _ := msg.Get(HeaderTopic)
		if clean := string(appendHeaderValue(nil, []byte(want))); got != clean {
			t.Errorf("%s: Zulip-Topic %q, encoding/json decodes %q", v, got, clean)
		}
	}
}
