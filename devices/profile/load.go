package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/wardgate/wardgate/devices/yamlstrict"
)

// Set is the profiles a gateway knows, by name.
type Set struct {
	byName map[string]*Profile
}

// Get returns the profile of that name (vendor/model).
func (s *Set) Get(name string) (*Profile, bool) {
	p, ok := s.byName[strings.ToLower(name)]
	return p, ok
}

// Names lists the profiles' names, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LoadError lists the problems of every profile file that failed.
type LoadError struct {
	Files []*yamlstrict.Problems
}

func (e *LoadError) Error() string {
	var parts []string
	for _, ps := range e.Files {
		parts = append(parts, ps.Error())
	}
	return strings.Join(parts, "\n")
}

// Load reads the built-in profiles from builtin (the embedded
// firmware-profiles folder) and then, when dir is not empty, the profiles
// under dir, which add to them or replace one of the same name. Every file
// is checked; a *LoadError lists the problems of all that failed, and the
// profiles that loaded are returned beside it.
func Load(builtin fs.FS, dir string) (*Set, error) {
	s := &Set{byName: map[string]*Profile{}}
	lerr := &LoadError{}
	if builtin != nil {
		s.loadFS(builtin, "builtin:", lerr)
	}
	if dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			ps := yamlstrict.NewProblems(dir)
			ps.Add(0, "", "profiles_dir is not a readable folder")
			lerr.Files = append(lerr.Files, ps)
		} else {
			s.loadFS(os.DirFS(dir), dir+string(filepath.Separator), lerr)
		}
	}
	if len(lerr.Files) > 0 {
		return s, lerr
	}
	return s, nil
}

func (s *Set) loadFS(fsys fs.FS, prefix string, lerr *LoadError) {
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			ps := yamlstrict.NewProblems(prefix + p)
			ps.Add(0, "", err.Error())
			lerr.Files = append(lerr.Files, ps)
			return nil
		}
		if d.IsDir() || (path.Ext(p) != ".yaml" && path.Ext(p) != ".yml") {
			return nil
		}
		name := strings.ToLower(strings.TrimSuffix(p, path.Ext(p)))
		data, err := fs.ReadFile(fsys, p)
		file := prefix + p
		if err != nil {
			ps := yamlstrict.NewProblems(file)
			ps.Add(0, "", err.Error())
			lerr.Files = append(lerr.Files, ps)
			return nil
		}
		if strings.Count(name, "/") != 1 {
			ps := yamlstrict.NewProblems(file)
			ps.Add(0, "", "a profile lives at <vendor>/<model>.yaml")
			lerr.Files = append(lerr.Files, ps)
			return nil
		}
		p2, err := Parse(file, name, data)
		if err != nil {
			var ps *yamlstrict.Problems
			if errors.As(err, &ps) {
				lerr.Files = append(lerr.Files, ps)
			}
			return nil
		}
		s.byName[name] = p2
		return nil
	})
	if err != nil {
		ps := yamlstrict.NewProblems(prefix)
		ps.Add(0, "", err.Error())
		lerr.Files = append(lerr.Files, ps)
	}
}

// Parse decodes and checks one profile. file names it in messages; name is
// its vendor/model. The error is a *yamlstrict.Problems listing every
// problem.
func Parse(file, name string, data []byte) (*Profile, error) {
	ps := yamlstrict.NewProblems(file)
	p := &Profile{Name: name, Source: file}
	if !yamlstrict.Decode(ps, data, p) {
		return nil, ps
	}
	p.check(ps)
	ps.Sort()
	if len(ps.Errors()) > 0 {
		return nil, ps
	}
	return p, nil
}

// MustParse is Parse for tests and built-in examples; it panics on error.
func MustParse(name, yaml string) *Profile {
	p, err := Parse(name+".yaml", name, []byte(yaml))
	if err != nil {
		panic(fmt.Sprintf("profile %s: %v", name, err))
	}
	return p
}
