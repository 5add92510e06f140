package proxy

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// member is one top-level member of a JSON object: its key (unescaped)
// and where its value lies in the body.
type member struct {
	key        string
	start, end int // body[start:end] is the value, as sent
}

// topLevel is a request body's top-level members, in the order sent.
type topLevel struct {
	body    []byte
	members []member
}

// get returns the raw value of key; with a key sent twice, the last one,
// as encoding/json would.
func (t *topLevel) get(key string) ([]byte, bool) {
	for i := len(t.members) - 1; i >= 0; i-- {
		if m := t.members[i]; m.key == key {
			return t.body[m.start:m.end], true
		}
	}
	return nil, false
}

// hasDuplicates reports whether a key is sent twice: pairwise for the
// handful of keys a chat request has, with a set beyond that, so a body of
// many thousands of keys costs linear time, not quadratic.
func (t *topLevel) hasDuplicates() bool {
	if len(t.members) > 16 {
		seen := make(map[string]struct{}, len(t.members))
		for _, m := range t.members {
			if _, ok := seen[m.key]; ok {
				return true
			}
			seen[m.key] = struct{}{}
		}
		return false
	}
	for i := range t.members {
		for j := i + 1; j < len(t.members); j++ {
			if t.members[i].key == t.members[j].key {
				return true
			}
		}
	}
	return false
}

// replace returns the body with the value of key replaced by raw, every
// other byte as the client sent it.
func (t *topLevel) replace(key string, raw []byte) []byte {
	out := make([]byte, 0, len(t.body)+len(raw))
	last := 0
	for _, m := range t.members {
		if m.key == key {
			out = append(append(out, t.body[last:m.start]...), raw...)
			last = m.end
		}
	}
	return append(out, t.body[last:]...)
}

// parseTopLevel splits a JSON object into its top-level members without
// decoding their values. ok is false when body is not one valid JSON
// object; the caller then learns why from encoding/json.
func parseTopLevel(body []byte) (t topLevel, ok bool) {
	if !json.Valid(body) {
		return t, false
	}
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return t, false
	}
	t.body = body
	t.members = make([]member, 0, 8)
	i = skipSpace(body, i+1)
	if body[i] == '}' {
		return t, true
	}
	for {
		// body is valid JSON: a key string, a colon, a value, then a comma
		// or the closing brace.
		ks := i
		i = skipString(body, i)
		key := string(body[ks+1 : i-1])
		if bytes.IndexByte(body[ks:i], '\\') >= 0 || !utf8.ValidString(key) {
			// Escapes, or bytes encoding/json reads as U+FFFD.
			if json.Unmarshal(body[ks:i], &key) != nil {
				return topLevel{}, false
			}
		}
		i = skipSpace(body, i)
		i = skipSpace(body, i+1) // the colon
		vs := i
		i = skipValue(body, i)
		t.members = append(t.members, member{key: key, start: vs, end: i})
		i = skipSpace(body, i)
		if body[i] == '}' {
			return t, true
		}
		i = skipSpace(body, i+1) // the comma
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the (valid) value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// nonEmptyArray reports whether raw (a valid JSON value) is an array with
// at least one element.
func nonEmptyArray(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '[' {
		return false
	}
	i := skipSpace(raw, 1)
	return i < len(raw) && raw[i] != ']'
}
