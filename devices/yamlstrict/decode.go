package yamlstrict

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Scalar is implemented by types that parse themselves from one YAML scalar
// (durations, byte sizes, secret files, MDC codes).
type Scalar interface {
	ParseScalar(s string) error
}

// decoder walks the YAML node tree into the config structs itself, instead of
// yaml.Unmarshal, so that every problem is reported (not just the first) with
// its line and its key path, and an unknown key is an error.
type decoder struct {
	problems *Problems
	lines    map[string]int // key path → line, for validation messages
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.problems.Add(n.Line, path, fmt.Sprintf(format, args...))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		d.decode(n.Content[0], v, path)
		return
	}
	if _, ok := d.lines[path]; !ok && path != "" {
		d.lines[path] = n.Line // list items; keys were recorded at their key
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the default
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if s, ok := v.Addr().Interface().(Scalar); ok {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "must be a single value, not a %s", kindName(n))
			return
		}
		if err := s.ParseScalar(n.Value); err != nil {
			d.errorf(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "must be a mapping of keys to values, not a %s", kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if seen[k.Value] {
				d.errorf(k, p, "appears twice")
				continue
			}
			seen[k.Value] = true
			d.lines[p] = k.Line
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, p)
			v.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "must be a list, not a %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "must be a string, not a %s", kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "must be a whole number, not a %s", kindName(n))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
		if err != nil {
			d.errorf(n, path, "must be a whole number, not %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "must be a number, not a %s", kindName(n))
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil {
			d.errorf(n, path, "must be a number, not %q", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Uint64, reflect.Uint32:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "must be a whole number, not a %s", kindName(n))
			return
		}
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, v.Type().Bits())
		if err != nil {
			d.errorf(n, path, "must be a whole number from 0 (0x… for hexadecimal), not %q", n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || (n.Value != "true" && n.Value != "false") {
			d.errorf(n, path, "must be true or false, not %q", n.Value)
			return
		}
		v.SetBool(n.Value == "true")
	default:
		panic(fmt.Sprintf("yamlstrict: no decoder for %s at %s", v.Type(), path))
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping of keys to values, not a %s", kindName(n))
		return
	}
	fields := map[string]int{}
	var known []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		known = append(known, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		idx, ok := fields[k.Value]
		switch {
		case !ok:
			msg := "unknown key"
			if s := suggest(k.Value, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				sort.Strings(known)
				msg += " (known here: " + strings.Join(known, ", ") + ")"
			}
			d.errorf(k, p, "%s", msg)
		case seen[k.Value]:
			d.errorf(k, p, "appears twice")
		default:
			seen[k.Value] = true
			d.lines[p] = k.Line
			d.decode(val, v.Field(idx), p)
		}
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "single value"
	}
}

// Suggest returns the known word closest to an unknown one, if it is close
// enough to be a typo ("" otherwise).
func Suggest(key string, known []string) string { return suggest(key, known) }

// suggest returns the known key closest to an unknown one, if it is close
// enough to be a typo.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
