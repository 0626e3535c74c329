package hl7

import "strings"

// Unescape resolves the escape sequences of s written with the delimiters
// d:
//
//	\F\ \S\ \T\ \R\ \E\ \P\  the field, component, sub-component, repetition,
//	                         escape and truncation characters
//	\Xhh..\                  the bytes of the hexadecimal digits
//	\.br\                    a line break ("\n")
//	\H\ \N\                  start and end of highlighting: removed
//
// Any other sequence (\Z..\ local escapes, \C..\ and \M..\ character-set
// switches, other formatting commands such as \.sp\) and an escape
// character without its closing one are kept as written. s is returned
// unchanged, without allocating, when it holds no escape character.
func Unescape(s string, d Delimiters) string {
	e := d.Escape
	if e == 0 {
		return s
	}
	i := strings.IndexByte(s, e)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s[1:], e)
		if j < 0 {
			break // no closing escape: kept as written
		}
		seq, rest := s[1:1+j], s[j+2:]
		if !resolve(&b, seq, d) {
			b.WriteString(s[:j+2])
		}
		s = rest
		i = strings.IndexByte(s, e)
	}
	b.WriteString(s)
	return b.String()
}

// resolve writes what the escape sequence seq (without its escape
// characters) stands for; false when it is kept as written.
func resolve(b *strings.Builder, seq string, d Delimiters) bool {
	var c byte
	switch seq {
	case "F":
		c = d.Field
	case "S":
		c = d.Component
	case "T":
		c = d.Subcomponent
	case "R":
		c = d.Repetition
	case "E":
		c = d.Escape
	case "P":
		c = d.Truncation
	case ".br":
		c = '\n'
	case "H", "N":
		return true
	default:
		if len(seq) < 3 || seq[0] != 'X' || len(seq)%2 == 0 {
			return false
		}
		hex := seq[1:]
		for i := 0; i < len(hex); i++ {
			if unhex(hex[i]) < 0 {
				return false
			}
		}
		for i := 0; i < len(hex); i += 2 {
			b.WriteByte(byte(unhex(hex[i])<<4 | unhex(hex[i+1])))
		}
		return true
	}
	if c == 0 {
		return false
	}
	b.WriteByte(c)
	return true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// Escape writes s for a message with the delimiters d: each delimiter as
// its escape sequence, and CR and LF (which would end the segment) as \X0D\
// and \X0A\. Unescape(Escape(s, d), d) == s. Without an escape character
// in d, delimiters and line ends cannot be written and are replaced by a
// space.
func Escape(s string, d Delimiters) string {
	if !needsEscape(s, d) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	e := d.Escape
	for i := 0; i < len(s); i++ {
		c := s[i]
		var seq string
		switch {
		case c == 0:
			// 0 stands for "no such delimiter" in Delimiters: never a match.
		case c == d.Field:
			seq = "F"
		case c == d.Component:
			seq = "S"
		case c == d.Subcomponent:
			seq = "T"
		case c == d.Repetition:
			seq = "R"
		case c == d.Escape:
			seq = "E"
		case c == d.Truncation:
			seq = "P"
		case c == '\r':
			seq = "X0D"
		case c == '\n':
			seq = "X0A"
		}
		switch {
		case seq == "":
			b.WriteByte(c)
		case e == 0:
			b.WriteByte(' ')
		default:
			b.WriteByte(e)
			b.WriteString(seq)
			b.WriteByte(e)
		}
	}
	return b.String()
}

func needsEscape(s string, d Delimiters) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
		case c == d.Field, c == d.Component, c == d.Subcomponent, c == d.Repetition,
			c == d.Escape, c == d.Truncation, c == '\r', c == '\n':
			return true
		}
	}
	return false
}
