// Package payload validates JSON payloads against the JSON Schemas (2020-12)
// that an automation declares for its batches and items. Compiled schemas are
// cached by the hash of their text, so a schema is compiled once per process
// however many payloads it checks.
package payload

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/runledger/runledger"
)

// Schema is a compiled JSON Schema. A nil *Schema accepts everything.
type Schema struct{ s *jsonschema.Schema }

var cache sync.Map // [32]byte -> *Schema

const maxCached = 4096

var cached int64
var cacheMu sync.Mutex

// Compile compiles a schema given as a decoded JSON value (as ent stores
// jsonb). An empty or nil schema returns a nil *Schema. A schema that does
// not compile is an *runledger.InvalidError naming field (the column).
func Compile(field string, schema map[string]any) (*Schema, error) {
	if len(schema) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(schema)
	if err != nil {
		return nil, &runledger.InvalidError{Field: field, Reason: "schema is not JSON", Err: err}
	}
	key := sha256.Sum256(raw)
	if s, ok := cache.Load(key); ok {
		return s.(*Schema), nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, &runledger.InvalidError{Field: field, Reason: "schema is not JSON", Err: err}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const url = "mem://runledger/schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, &runledger.InvalidError{Field: field, Reason: "invalid JSON Schema", Err: err}
	}
	compiled, err := c.Compile(url)
	if err != nil {
		return nil, &runledger.InvalidError{Field: field, Reason: "invalid JSON Schema: " + firstLine(err.Error()), Err: err}
	}
	s := &Schema{s: compiled}
	cacheMu.Lock()
	if cached < maxCached {
		cache.Store(key, s)
		cached++
	}
	cacheMu.Unlock()
	return s, nil
}

// Validate checks v (a decoded JSON value, or a map as ent stores it)
// against s. The error is an *runledger.InvalidError whose Field is
// subject + the JSON pointer of the failing value ("item 7: /amount").
func (s *Schema) Validate(subject string, v any) error {
	if s == nil {
		return nil
	}
	if m, ok := v.(map[string]any); ok && m == nil {
		v = nil
	}
	norm, err := normalize(v)
	if err != nil {
		return &runledger.InvalidError{Field: subject, Reason: "payload is not JSON", Err: err}
	}
	err = s.s.Validate(norm)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &runledger.InvalidError{Field: subject, Reason: "payload does not match the schema", Err: err}
	}
	leaf := ve
	for len(leaf.Causes) > 0 {
		leaf = leaf.Causes[0]
	}
	ptr := "/" + strings.Join(escape(leaf.InstanceLocation), "/")
	reason := leaf.ErrorKind.LocalizedString(printer)
	return &runledger.InvalidError{Field: subject + ": " + ptr, Reason: reason, Err: errors.New("payload does not match the schema")}
}

var printer = message.NewPrinter(language.English)

// normalize turns Go values into what the validator walks (nil, bool,
// string, numbers, []any, map[string]any), by a JSON round trip only when v
// holds something else.
func normalize(v any) (any, error) {
	if !needsRoundTrip(v) {
		return v, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}

func needsRoundTrip(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for _, e := range t {
			if needsRoundTrip(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if needsRoundTrip(e) {
				return true
			}
		}
	case nil, bool, string, json.Number, float32, float64,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
	default:
		return true // a struct, a typed slice or map: let encoding/json decide
	}
	return false
}

// ValidateRawFunc checks a raw JSON document against s. The subject the
// error names is computed only on failure, for hot loops (AddItems validates
// every item of a million-item ingest).
func (s *Schema) ValidateRawFunc(subject func() string, raw []byte) error {
	if s == nil {
		return nil
	}
	if depth(raw) > MaxDepth {
		return CheckRaw(subject, raw)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return &runledger.InvalidError{Field: subject(), Reason: "payload is not valid JSON", Err: err}
	}
	if err := s.s.Validate(doc); err != nil {
		return s.Validate(subject(), doc) // the slow path builds the detailed error
	}
	return nil
}

// AllValid reports whether every one of raws (each one JSON document) is
// valid against s, decoding them together as one JSON array: one decoder
// for the group instead of one per payload, a fraction of the garbage. It
// answers only yes or no (false also for a payload that is not one JSON
// document, or nested deeper than MaxDepth): on false, ValidateRawFunc on
// each tells which fails and why. A nil s accepts anything well-formed.
func (s *Schema) AllValid(raws [][]byte) bool {
	if len(raws) == 0 {
		return true
	}
	size := 2
	for _, raw := range raws {
		// Each must be one document on its own, or the array would join
		// or split them.
		if depth(raw) > MaxDepth || !json.Valid(raw) {
			return false
		}
		size += len(raw) + 1
	}
	if s == nil {
		return true
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '[')
	for i, raw := range raws {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, raw...)
	}
	buf = append(buf, ']')
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf))
	if err != nil {
		return false
	}
	docs, ok := doc.([]any)
	if !ok || len(docs) != len(raws) {
		return false
	}
	for _, d := range docs {
		if s.s.Validate(d) != nil {
			return false
		}
	}
	return true
}

func escape(parts []string) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~", "~0"), "/", "~1")
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// String describes the schema for debugging.
func (s *Schema) String() string {
	if s == nil {
		return "<no schema>"
	}
	return fmt.Sprintf("schema %s", s.s.Location)
}

// MaxDepth is how deeply arrays and objects may nest in a payload.
const MaxDepth = 128

// CheckRaw checks that raw is one valid JSON document nested at most
// MaxDepth levels deep. The error is an *runledger.InvalidError whose Field is
// subject() (computed only on failure) and whose Reason says which rule
// failed.
func CheckRaw(subject func() string, raw []byte) error {
	if d := depth(raw); d > MaxDepth {
		return &runledger.InvalidError{Field: subject(), Reason: fmt.Sprintf("payload is nested deeper than %d levels", MaxDepth)}
	}
	if !json.Valid(raw) {
		return &runledger.InvalidError{Field: subject(), Reason: "payload is not valid JSON"}
	}
	return nil
}

// depth returns the deepest nesting of arrays and objects in raw, outside
// strings. It stops counting once past MaxDepth. On malformed input it
// returns a number that json.Valid then rejects anyway.
func depth(raw []byte) int {
	d, deepest, inString := 0, 0, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			d++
			if d > deepest {
				deepest = d
				if deepest > MaxDepth {
					return deepest
				}
			}
		case ']', '}':
			d--
		}
	}
	return deepest
}

// CheckValue is CheckRaw for a decoded value (as ent stores jsonb): only the
// nesting is checked, as the value is JSON by construction.
func CheckValue(subject func() string, v any) error {
	if valueDepth(v, 0) > MaxDepth {
		return &runledger.InvalidError{Field: subject(), Reason: fmt.Sprintf("payload is nested deeper than %d levels", MaxDepth)}
	}
	return nil
}

func valueDepth(v any, d int) int {
	if d > MaxDepth {
		return d
	}
	deepest := d
	switch t := v.(type) {
	case map[string]any:
		for _, e := range t {
			deepest = max(deepest, valueDepth(e, d+1))
		}
		if len(t) == 0 {
			deepest = max(deepest, d+1)
		}
	case []any:
		for _, e := range t {
			deepest = max(deepest, valueDepth(e, d+1))
		}
		if len(t) == 0 {
			deepest = max(deepest, d+1)
		}
	}
	return deepest
}
