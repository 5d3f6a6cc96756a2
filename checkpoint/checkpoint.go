package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source"
)

// FormatVersion is the version of the encoding that Encode writes and Decode
// accepts. It changes only when an old bridge could misread a new checkpoint.
const FormatVersion = 1

// Checkpoint is the bridge's durable position in one Zulip event queue.
type Checkpoint struct {
	// Version is the format version; Encode sets it, Decode checks it.
	Version int `json:"version"`
	// Site is the Zulip site the queue belongs to. Callers compare it with
	// the configured site before resuming, so that a state directory or key
	// reused for another server is not taken for its own.
	Site string `json:"site"`
	// QueueID is the Zulip event queue. It is empty when no queue is
	// registered (after the queue was lost), and LastEventID is then -1.
	QueueID string `json:"queue_id"`
	// LastEventID is the highest event id whose batch the broker confirmed:
	// the last_event_id that acknowledges it. -1 means no event yet, as for
	// a queue just registered.
	LastEventID int64 `json:"last_event_id"`
	// MaxMessageID is the highest message id seen, the anchor that backfill
	// starts from when the queue is lost. 0 (or -1) means none seen.
	MaxMessageID int64 `json:"max_message_id"`
	// SinkPosition is opaque data from sink.Recoverer.Position, stored as
	// compact JSON; nil when the sink has none.
	SinkPosition json.RawMessage `json:"sink_position,omitempty"`
	// Term is the leadership term of the bridge that wrote it (leader
	// election, docs/standby.md); 0 without election. A store that can
	// compare and set refuses to replace a checkpoint of a later term
	// (ErrStaleTerm).
	Term uint64 `json:"term,omitempty"`
	// UpdatedAt is when the caller made the checkpoint, for operators.
	UpdatedAt time.Time `json:"updated_at"`
}

// Store keeps one checkpoint. Implementations are safe for concurrent use,
// so that a readiness probe may call Check while the pipeline saves.
type Store interface {
	// Load returns the saved checkpoint. found is false, with a nil error,
	// only when nothing was ever saved (or it was deleted on purpose).
	// Data that cannot be decoded yields an error wrapping ErrCorrupt or
	// ErrUnsupportedVersion that names the file or key.
	Load(ctx context.Context) (cp Checkpoint, found bool, err error)
	// Save replaces the checkpoint. It returns nil only when the new
	// checkpoint is durable; on error the store holds either the previous
	// checkpoint or the new one, never a mix, and Save may be called again.
	Save(ctx context.Context, cp Checkpoint) error
	// Check reports whether the store can be written right now.
	Check(ctx context.Context) error
	// Close releases the store's resources (not connections it was given).
	Close() error
}

var (
	// ErrCorrupt means stored data is not a valid checkpoint. The bridge
	// must stop rather than start over: an operator decides.
	ErrCorrupt = errors.New("checkpoint corrupt")
	// ErrUnsupportedVersion means the checkpoint was written in a format
	// this bridge does not know, typically by a newer bridge.
	ErrUnsupportedVersion = errors.New("unsupported checkpoint version")
	// ErrInvalid means a checkpoint given to Save is not one that Load
	// could return; nothing was written.
	ErrInvalid = errors.New("invalid checkpoint")
	// ErrLocked means another process (or another Store in this one) owns
	// the checkpoint.
	ErrLocked = errors.New("checkpoint store in use by another bridge")
	// ErrConflict means someone else wrote the checkpoint since this Store
	// last read or wrote it: two bridges share one key.
	ErrConflict = errors.New("checkpoint written by another bridge")
	// ErrStaleTerm means the stored checkpoint was written under a later
	// leadership term than the one given to Save: another replica leads
	// now, and nothing was written.
	ErrStaleTerm = errors.New("checkpoint written under a later leadership term")
	// ErrClosed is returned by a Store used after Close.
	ErrClosed = errors.New("checkpoint store closed")
)

// Encode returns the stored form of cp: compact JSON with Version set to
// FormatVersion. It fails with ErrInvalid for a checkpoint that Decode
// would reject, so a store never writes what it could not read back.
func Encode(cp Checkpoint) ([]byte, error) {
	cp.Version = FormatVersion
	if err := cp.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	data, err := json.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return data, nil
}

// Decode parses data written by Encode. Errors wrap ErrCorrupt or
// ErrUnsupportedVersion; stores add where the data came from. Unknown
// fields are ignored, so that a later bridge can add an optional field
// without a new FormatVersion that older bridges would refuse.
func Decode(data []byte) (Checkpoint, error) {
	// The version is read on its own first, so that a checkpoint from a
	// newer bridge is reported as such even if its other fields changed.
	var head struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrCorrupt, describeJSONError(data, err))
	}
	switch {
	case head.Version == nil:
		return Checkpoint{}, fmt.Errorf("%w: no version field", ErrCorrupt)
	case *head.Version < 1:
		// No bridge ever wrote such a version: damage, not a newer format.
		return Checkpoint{}, fmt.Errorf("%w: version %d", ErrCorrupt, *head.Version)
	case *head.Version != FormatVersion:
		return Checkpoint{}, fmt.Errorf("%w %d (this bridge reads version %d)", ErrUnsupportedVersion, *head.Version, FormatVersion)
	}
	var cp Checkpoint
	if err := json.Unmarshal(data, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrCorrupt, describeJSONError(data, err))
	}
	if bytes.Equal(cp.SinkPosition, []byte("null")) {
		cp.SinkPosition = nil
	}
	if err := cp.validate(); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return cp, nil
}

// BelongsTo reports whether cp is site's: whether its Site is a spelling of
// the same site (source.Site.Same), as written by this release or an older
// one. A checkpoint of another site is an error that names both, so that a
// state directory or key reused for another server is not taken for its own.
func (cp Checkpoint) BelongsTo(site source.Site) error {
	if site.Same(cp.Site) {
		return nil
	}
	return fmt.Errorf("checkpoint belongs to %s, not to the configured site %s: use another state dir or checkpoint key", cp.Site, site)
}

func (cp Checkpoint) validate() error {
	switch {
	case cp.Site == "":
		return errors.New("site is empty")
	case cp.LastEventID < -1:
		return fmt.Errorf("last_event_id %d is below -1", cp.LastEventID)
	case cp.MaxMessageID < -1:
		return fmt.Errorf("max_message_id %d is below -1", cp.MaxMessageID)
	case cp.QueueID == "" && cp.LastEventID != -1:
		return fmt.Errorf("last_event_id %d without a queue_id", cp.LastEventID)
	}
	return nil
}

// describeJSONError keeps decode errors short and free of the data itself,
// which could be anything: a position, a field name and a type at most.
func describeJSONError(data []byte, err error) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return "empty"
	}
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		tm     *time.ParseError
	)
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d of %d", syntax.Offset, len(data))
	case errors.As(err, &typ) && typ.Field != "":
		return fmt.Sprintf("field %s is a JSON %s, want %s", typ.Field, typ.Value, typ.Type)
	case errors.As(err, &typ):
		return fmt.Sprintf("a JSON %s, want an object", typ.Value)
	case errors.As(err, &tm):
		return "updated_at is not an RFC 3339 time"
	}
	return "a field value does not parse"
}
