package yamlstrict

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong (or, for a warning, risky) in a YAML file.
type Problem struct {
	File    string
	Line    int    // 0 when the problem has no line (a missing key)
	Path    string // key path: monitors[1].serial.baud
	Message string
	Warning bool // a warning does not stop the gateway
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in a file; as an error it lists
// them all, one a line, in file order.
type Problems struct {
	File  string
	List  []Problem
	lines map[string]int
}

// NewProblems starts the list of problems of the named file.
func NewProblems(file string) *Problems {
	return &Problems{File: file, lines: map[string]int{}}
}

// Add reports a problem at a line.
func (ps *Problems) Add(line int, path, msg string) {
	ps.List = append(ps.List, Problem{File: ps.File, Line: line, Path: path, Message: msg})
}

// At reports a problem at a key path, on the line of the key or, when the key
// is absent, of its nearest present parent.
func (ps *Problems) At(path, format string, args ...any) {
	ps.Add(ps.LineOf(path), path, fmt.Sprintf(format, args...))
}

// Warn reports a warning at a key path.
func (ps *Problems) Warn(path, format string, args ...any) {
	ps.List = append(ps.List, Problem{File: ps.File, Line: ps.LineOf(path), Path: path,
		Message: fmt.Sprintf(format, args...), Warning: true})
}

// LineOf is the line of a key path, or of its nearest present parent.
func (ps *Problems) LineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := ps.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// Errors are the problems that are not warnings.
func (ps *Problems) Errors() []Problem {
	var out []Problem
	for _, p := range ps.List {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Warnings are the problems that do not stop the gateway.
func (ps *Problems) Warnings() []Problem {
	var out []Problem
	for _, p := range ps.List {
		if p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Sort puts the problems in file order.
func (ps *Problems) Sort() {
	sort.SliceStable(ps.List, func(i, j int) bool { return ps.List[i].Line < ps.List[j].Line })
}

func (ps *Problems) Error() string {
	errs := ps.Errors()
	lines := make([]string, len(errs))
	for i, p := range errs {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
