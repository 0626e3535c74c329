package r4

import (
	"bytes"
	"encoding/json"
)

// Scanning JSON that json.Valid accepted: only where values begin and end
// is left to find.

// members appends the names and values of the object raw (which begins with
// '{') to c.mem, and returns where they are.
func (c *checker) members(raw []byte) (start, end int) {
	start = len(c.mem)
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] != '}' {
		j := endOfString(raw, i)
		name := raw[i+1 : j-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			var s string
			json.Unmarshal(raw[i:j], &s)
			name = []byte(s)
		}
		i = skipSpace(raw, j)
		i = skipSpace(raw, i+1) // the colon
		j = endOfValue(raw, i)
		c.mem = append(c.mem, member{name: name, val: raw[i:j]})
		i = skipSpace(raw, j)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return start, len(c.mem)
}

// elements appends the values of the array raw (which begins with '[') to
// c.items, and returns where they are.
func (c *checker) elements(raw []byte) (start, end int) {
	start = len(c.items)
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] != ']' {
		j := endOfValue(raw, i)
		c.items = append(c.items, raw[i:j])
		i = skipSpace(raw, j)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return start, len(c.items)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the string that begins at b[i].
func endOfString(b []byte, i int) int {
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

// endOfValue returns the index after the value that begins at b[i].
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = endOfString(b, i) - 1
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
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// stringValue decodes a JSON string.
func stringValue(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}
