package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// DecodeStrict decodes one JSON object into v (a pointer to a struct),
// refusing unknown fields and trailing data. Every failure is a *FieldError
// naming the field at fault, or "(body)" when the JSON itself is malformed.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err == nil {
		if dec.More() {
			return &FieldError{Field: "(body)", Problem: "must hold exactly one JSON object"}
		}
		return nil
	}
	// The fast path failed: decode again, member by member, to name the
	// field that is at fault.
	return diagnose(data, v)
}

func diagnose(data []byte, v any) error {
	var members map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&members); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) || bytes.HasPrefix(bytes.TrimSpace(data), []byte("null")) {
			return &FieldError{Field: "(body)", Problem: "must be a JSON object"}
		}
		return &FieldError{Field: "(body)", Problem: "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if dec.More() {
		return &FieldError{Field: "(body)", Problem: "must hold exactly one JSON object"}
	}
	if members == nil {
		return &FieldError{Field: "(body)", Problem: "must be a JSON object"}
	}
	fields := jsonFields(reflect.TypeOf(v).Elem())
	target := reflect.ValueOf(v).Elem()
	for name, raw := range members {
		idx, ok := fields[name]
		if !ok {
			return &FieldError{Field: name, Problem: "is not a known field"}
		}
		fv := target.Field(idx)
		if err := json.Unmarshal(raw, fv.Addr().Interface()); err != nil {
			return &FieldError{Field: name, Problem: describe(fv.Type(), err)}
		}
	}
	return &FieldError{Field: "(body)", Problem: "could not be decoded"}
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

// jsonFields maps the JSON member names of a struct type to field indexes.
func jsonFields(t reflect.Type) map[string]int {
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
	return m
}
