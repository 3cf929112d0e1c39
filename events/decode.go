package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// DecodeStrict decodes one JSON object into v (a pointer to a struct),
// refusing unknown fields, member names that match a field only when case
// is ignored, duplicate members, and anything but exactly one JSON object.
// Every failure is a *FieldError naming the field at fault, or "(body)"
// when the JSON itself is malformed or not one object.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// encoding/json matches names case-insensitively and keeps the
		// last of duplicate members; refuse both so every reader of the
		// payload sees the same event.
		return checkMembers(data, jsonFields(reflect.TypeOf(v).Elem()), nil)
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe // from a type's own UnmarshalJSON (Command's policy_version)
	}
	// The fast path failed: decode again, member by member, to name the
	// field that is at fault.
	return diagnose(data, v)
}

func diagnose(data []byte, v any) error {
	var raw json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		if err == io.EOF {
			return &FieldError{Field: "(body)", Problem: "is empty; expected a JSON object"}
		}
		return &FieldError{Field: "(body)", Problem: "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	target := reflect.ValueOf(v).Elem()
	err := checkMembers(data, jsonFields(target.Type()), func(idx int, name string, value []byte) error {
		fv := target.Field(idx)
		if err := json.Unmarshal(value, fv.Addr().Interface()); err != nil {
			return &FieldError{Field: name, Problem: describe(fv.Type(), err)}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return &FieldError{Field: "(body)", Problem: "could not be decoded"}
}

// checkMembers walks the members of the JSON object that data holds, which
// must start with a syntactically valid JSON value: each member name must
// be a field of fields, spelled exactly, and appear once; after the object
// only whitespace may follow. each, when not nil, is called for every
// member with the field index, name and raw value.
func checkMembers(data []byte, fields map[string]int, each func(idx int, name string, value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return &FieldError{Field: "(body)", Problem: "must be a JSON object"}
	}
	n := 0
	for _, idx := range fields {
		n = max(n, idx+1)
	}
	seen := make([]bool, n)
	i = skipSpace(data, i+1)
	for i < len(data) && data[i] != '}' {
		end := skipString(data, i)
		name, err := unquote(data[i:end])
		if err != nil {
			return &FieldError{Field: "(body)", Problem: "malformed JSON: bad member name"}
		}
		idx, ok := fields[name]
		if !ok {
			return &FieldError{Field: displayName(name), Problem: "is not a known field"}
		}
		if seen[idx] {
			return &FieldError{Field: name, Problem: "appears more than once"}
		}
		seen[idx] = true
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // ':'
		end = skipValue(data, i)
		if each != nil {
			if err := each(idx, name, data[i:end]); err != nil {
				return err
			}
		}
		i = skipSpace(data, end)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	if skipSpace(data, i+1) < len(data) {
		return &FieldError{Field: "(body)", Problem: "must hold exactly one JSON object"}
	}
	return nil
}

// displayName returns a caller's member name fit to appear in an error
// (which goes into a NATS header): plain when it is a short printable ASCII
// name, else quoted with escapes and cut to 64 bytes.
func displayName(name string) string {
	const max = 64
	plain := name != "" && len(name) <= max
	for i := 0; plain && i < len(name); i++ {
		plain = name[i] > ' ' && name[i] < 0x7f && name[i] != '"' && name[i] != '\\'
	}
	if plain {
		return name
	}
	if len(name) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		return strconv.QuoteToASCII(name[:cut]) + "..."
	}
	return strconv.QuoteToASCII(name)
}

// unquote decodes a JSON string token, copying only when it has escapes.
func unquote(tok []byte) (string, error) {
	if len(tok) < 2 {
		return "", errors.New("truncated string")
	}
	if bytes.IndexByte(tok, '\\') < 0 {
		return string(tok[1 : len(tok)-1]), nil
	}
	var s string
	err := json.Unmarshal(tok, &s)
	return s, err
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the JSON string starting at i.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// skipValue returns the index just past the JSON value starting at i, which
// the caller knows to be valid JSON.
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch data[i] {
		case '"':
			i = skipString(data, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}

func describe(t reflect.Type, err error) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"
	case t == reflect.TypeFor[json.RawMessage]():
		return "must be valid JSON"
	}
	switch t.Kind() {
	case reflect.String:
		return "must be a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "must be an integer"
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "must be a non-negative integer"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Slice:
		return "must be an array"
	case reflect.Struct, reflect.Map:
		return "must be an object"
	}
	return fmt.Sprintf("is invalid: %v", err)
}

var fieldCache sync.Map // reflect.Type -> map[string]int

// jsonFields maps the JSON member names of a struct type to field indexes.
func jsonFields(t reflect.Type) map[string]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		m[name] = i
	}
	fieldCache.Store(t, m)
	return m
}
