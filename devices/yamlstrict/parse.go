// Package yamlstrict decodes YAML files into Go structs strictly: an unknown
// key is an error with a "did you mean", and every problem of a file is
// reported at once with its line and key path, not just the first. The
// gateway config and the firmware profiles both use it, so an engineer gets
// the same kind of message from either.
package yamlstrict

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Decode parses data as YAML into v (a pointer to a struct whose fields
// carry yaml tags), reporting every problem to ps. It returns false when the
// file is not YAML at all or is empty; v is then untouched.
func Decode(ps *Problems, data []byte, v any) bool {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				ps.Add(errorLine(e))
			}
		} else {
			ps.Add(errorLine(err.Error()))
		}
		return false
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		ps.Add(0, "", "the file is empty")
		return false
	}
	d := &decoder{problems: ps, lines: ps.lines}
	d.decode(&root, reflect.ValueOf(v).Elem(), "")
	return true
}

var yamlLineRe = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// errorLine splits "yaml: line 3: did not find expected key" into its line
// and message.
func errorLine(msg string) (int, string, string) {
	m := yamlLineRe.FindStringSubmatch(msg)
	if m == nil {
		return 0, "", msg
	}
	line, _ := strconv.Atoi(m[1])
	return line, "", "YAML syntax: " + m[2]
}
