package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// writeJSON writes v as the response body with status. The body is encoded
// before anything is sent so that an encoding failure can still become a 500
// instead of a truncated 200.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := marshalResponse(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = marshalResponse(map[string]string{"detail": "internal error: " + err.Error()})
	}
	h := w.Header()
	if !statusHasBody(status) {
		// Writing a body here would only produce http.ErrBodyNotAllowed.
		w.WriteHeader(status)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// marshalResponse renders v like Django REST framework's JSONRenderer: compact,
// no HTML escaping, no trailing newline.
func marshalResponse(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func statusHasBody(status int) bool {
	return !(status >= 100 && status < 200) && status != http.StatusNoContent && status != http.StatusNotModified
}

// writeDetail writes the contract's request-level error body {"detail": msg}.
func writeDetail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"detail": msg})
}

// fieldErrors is a 400 validation body: {"field": ["msg", ...]}; errors
// about the object as a whole go under "non_field_errors" as in DRF.
type fieldErrors map[string][]string

const nonFieldErrorsKey = "non_field_errors"

func (fe fieldErrors) add(field, msg string) {
	fe[field] = append(fe[field], msg)
}

// orderedObject is a JSON object whose keys keep their insertion order,
// because the contract fixes the key order of items and encoding/json sorts
// map keys.
type orderedObject struct {
	keys []string
	vals map[string]any
}

func newObject() *orderedObject {
	return &orderedObject{vals: make(map[string]any)}
}

// set adds key, or replaces its value in place so that a key never appears
// twice in the output.
func (o *orderedObject) set(key string, v any) *orderedObject {
	if o.vals == nil {
		o.vals = make(map[string]any)
	}
	if _, ok := o.vals[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.vals[key] = v
	return o
}

// MarshalJSON has a value receiver so that an orderedObject stored by value
// (for instance inside an []any) still keeps its order.
func (o orderedObject) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	// The outer encoder re-compacts this output but does not undo escaping,
	// so HTML escaping must be turned off here too.
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	encode := func(v any) error {
		if err := enc.Encode(v); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1) // Encode's trailing newline
		return nil
	}
	buf.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encode(k); err != nil {
			return nil, err
		}
		buf.WriteByte(':')
		if err := encode(o.vals[k]); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
