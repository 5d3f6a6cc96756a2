package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// An entry's stored form: when it was appended (8 bytes, Unix nanoseconds,
// big-endian), then the message's fields, each string or byte field as a
// uvarint length and its bytes, each integer as a varint:
//
//	subject topic key-flag [key] dedup-key payload
//	header-count (name value)...
//	event-id type op message-id timestamp
//
// key-flag is 0 for a nil Key (no conversation), 1 otherwise, so that a
// record key round-trips as nil or empty exactly.

func encodeEntry(at time.Time, m *mapping.Message) []byte {
	n := 8 + 6*binary.MaxVarintLen64 + len(m.Subject) + len(m.Topic) + len(m.Key) + len(m.DedupKey) + len(m.Payload) +
		len(m.Event.Type) + len(m.Event.Op) + 4*binary.MaxVarintLen64
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = appendString(b, m.Subject)
	b = appendString(b, m.Topic)
	if m.Key == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendBytes(b, m.Key)
	}
	b = appendString(b, m.DedupKey)
	b = appendBytes(b, m.Payload)
	b = binary.AppendUvarint(b, uint64(len(m.Headers)))
	for _, h := range m.Headers {
		b = appendString(b, h.Key)
		b = appendString(b, h.Value)
	}
	b = binary.AppendVarint(b, m.Event.ID)
	b = appendString(b, m.Event.Type)
	b = appendString(b, m.Event.Op)
	b = binary.AppendVarint(b, m.Event.MessageID)
	b = binary.AppendVarint(b, m.Event.Timestamp)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errTruncated = errors.New("truncated entry")

// decodeEntry parses what encodeEntry wrote. The message it returns owns
// its memory (v may be a page of the file, valid only in its transaction).
func decodeEntry(v []byte) (*mapping.Message, time.Time, error) {
	if len(v) < 8 {
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrCorrupt, errTruncated)
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	d := decoder{b: v[8:]}
	m := &mapping.Message{}
	m.Subject = d.string()
	m.Topic = d.string()
	switch d.byte() {
	case 0:
	case 1:
		m.Key = d.bytes()
	default:
		d.fail()
	}
	m.DedupKey = d.string()
	m.Payload = d.bytes()
	if nh := d.uvarint(); nh <= uint64(len(d.b)) { // every header takes at least a byte
		m.Headers = make([]mapping.Header, nh)
		for i := range m.Headers {
			m.Headers[i] = mapping.Header{Key: d.string(), Value: d.string()}
		}
	} else {
		d.fail()
	}
	m.Event.ID = d.varint()
	m.Event.Type = d.string()
	m.Event.Op = d.string()
	m.Event.MessageID = d.varint()
	m.Event.Timestamp = d.varint()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the entry", len(d.b))
	}
	if d.err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrCorrupt, d.err)
	}
	return m, at, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errTruncated
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }

func (d *decoder) varint() int64 { return readVarint(d, binary.Varint) }

// readVarint reads the next varint with read (binary.Uvarint or
// binary.Varint).
func readVarint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	v, n := read(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// field returns the next length-prefixed field, nil when it is cut short
// (the decoder has failed).
func (d *decoder) field() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	f := d.field()
	if d.err != nil {
		return nil
	}
	return append(make([]byte, 0, len(f)), f...)
}

func (d *decoder) string() string { return string(d.field()) }

// A batch's stored form, the value of one key (the sequence number of its
// first entry): the number of entries, then each entry as a uvarint
// length and its bytes. One key per batch keeps bbolt's tree small and a
// batch's append one insertion, however many events it holds.

func encodeBatch(entries [][]byte) []byte {
	n := binary.MaxVarintLen64
	for _, e := range entries {
		n += binary.MaxVarintLen64 + len(e)
	}
	b := binary.AppendUvarint(make([]byte, 0, n), uint64(len(entries)))
	for _, e := range entries {
		b = appendBytes(b, e)
	}
	return b
}

// batchCount returns how many entries a stored batch holds.
func batchCount(v []byte) (int, error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n == 0 || n > uint64(len(v)) {
		return 0, fmt.Errorf("%w: batch header", ErrCorrupt)
	}
	return int(n), nil
}

// eachEntry calls fn with the index and bytes of every entry of a stored
// batch, in order, until fn returns false.
func eachEntry(v []byte, fn func(i int, entry []byte) bool) error {
	count, err := batchCount(v)
	if err != nil {
		return err
	}
	_, k := binary.Uvarint(v)
	d := decoder{b: v[k:]}
	for i := range count {
		e := d.field()
		if d.err != nil {
			return fmt.Errorf("%w: entry %d of %d: %w", ErrCorrupt, i, count, d.err)
		}
		if !fn(i, e) {
			return nil
		}
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the batch", ErrCorrupt, len(d.b))
	}
	return nil
}
