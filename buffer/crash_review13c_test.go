package buffer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The spool's SIGKILL test with the same keys stored, replaced (also into
// another group), stored again with the same content, removed (also by
// version) and stored again, round after round, so that every path of the
// index (journal, overlay, apply, direct commits, removals) races with the
// others on one key. The child (role spool13c, started by init below, as
// TestMain knows only its own roles) prints an operation as it starts and
// once it is acknowledged; after the kill, each key must be as its last
// acknowledged operation left it, or as the one under way would have.

func init() {
	if os.Getenv("WARDGATE_CRASH_CHILD") == "spool13c" {
		spoolKeysChild(os.Getenv("WARDGATE_CRASH_PATH"), os.Getenv("WARDGATE_CRASH_ROUND"))
		os.Exit(0)
	}
}

const (
	keysWriters = 4
	keysPerW    = 6
)

func keysContent(seed uint64) []byte { return randomBytes(seed, 1<<10+int(seed%(48<<10))) }

func spoolKeysChild(dir, round string) {
	s, err := OpenSpool(dir, SpoolOptions{Logger: quiet})
	if err != nil {
		say("ERR %v", err)
		os.Exit(3)
	}
	say("OPEN")
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < keysWriters; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), uint64(len(round))+uint64(time.Now().UnixNano())))
			for {
				key := fmt.Sprintf("1.2.840.%d.%d", g, r.IntN(keysPerW))
				switch op := r.IntN(10); {
				case op < 2:
					say("r %s", key)
					err := s.Remove(ctx, key)
					if err != nil && !errors.Is(err, ErrNotFound) {
						say("ERR remove %v", err)
						os.Exit(3)
					}
					say("R %s", key)
				case op < 3:
					in, err := s.Get(key)
					if err != nil {
						continue
					}
					say("r %s", key)
					err = s.RemoveVersion(ctx, key, in.SHA256)
					if err != nil && !errors.Is(err, ErrNotFound) {
						say("ERR remove version %v", err)
						os.Exit(3)
					}
					say("R %s", key)
				default:
					seed := r.Uint64() % 4 // few contents: duplicates happen
					group := fmt.Sprintf("study-%d", r.IntN(2))
					data := keysContent(seed)
					say("s %s %s %s", key, sha(data), group)
					w, err := s.Create()
					if err != nil {
						say("ERR %v", err)
						os.Exit(3)
					}
					for p := data; len(p) > 0; {
						n := min(len(p), 8<<10)
						if _, err := w.Write(p[:n]); err != nil {
							say("ERR write %v", err)
							os.Exit(3)
						}
						p = p[n:]
					}
					in, _, err := w.Commit(ctx, key, group, nil)
					if err != nil {
						say("ERR commit %v", err)
						os.Exit(3)
					}
					// A duplicate keeps the stored entry (and its group).
					say("S %s %s %s", key, sha(data), in.Group)
				}
			}
		}()
	}
	wg.Wait()
}

type keyState struct {
	present    bool
	sha, group string
}

func TestSpoolSurvivesSIGKILLWithTheSameKeysStoredReplacedAndRemoved(t *testing.T) {
	rounds := 15
	if testing.Short() {
		rounds = 4
	}
	dir := filepath.Join(t.TempDir(), "spool")
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	state := map[string]keyState{}
	for round := 1; round <= rounds; round++ {
		pending := map[string]*keyState{} // the operation under way at the kill, per key
		for _, l := range runChild(t, "spool13c", dir, round, r)[1:] {
			f := strings.Fields(l)
			switch f[0] {
			case "s":
				pending[f[1]] = &keyState{true, f[2], f[3]}
			case "r":
				pending[f[1]] = &keyState{}
			case "S":
				state[f[1]] = keyState{true, f[2], f[3]}
				delete(pending, f[1])
			case "R":
				state[f[1]] = keyState{}
				delete(pending, f[1])
			}
		}
		s, err := OpenSpool(dir, SpoolOptions{Logger: quiet})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		rep := s.Stats().AtOpen
		if rep.MissingFile+rep.WrongSize != 0 {
			t.Fatalf("round %d: acknowledged instances lost: %+v", round, rep)
		}
		for g := 0; g < keysWriters; g++ {
			for k := 0; k < keysPerW; k++ {
				key := fmt.Sprintf("1.2.840.%d.%d", g, k)
				var got keyState
				if in, err := s.Get(key); err == nil {
					f, _, err := s.Open(key)
					if err != nil {
						t.Fatalf("round %d: %s is indexed but cannot be opened: %v", round, key, err)
					}
					b, _ := io.ReadAll(f)
					f.Close()
					got = keyState{true, sha(b), in.Group}
					if in.SHA256 != got.sha {
						t.Fatalf("round %d: %s's entry names other content than its file holds", round, key)
					}
				}
				want := state[key]
				p := pending[key]
				// A duplicate under way leaves the stored group.
				if p != nil && p.present && want.present && p.sha == want.sha {
					p = &keyState{true, want.sha, want.group}
				}
				if got != want && (p == nil || got != *p) {
					t.Fatalf("round %d: %s is %+v; acknowledged %+v, under way %+v (open found %+v)", round, key, got, want, p, rep)
				}
				state[key] = got
			}
		}
		// Groups list exactly the entries that name them.
		for _, group := range []string{"study-0", "study-1"} {
			ins, err := s.Group(group)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, in := range ins {
				if in.Group != group {
					t.Fatalf("round %d: group %s lists %s, whose entry is in %s", round, group, in.Key, in.Group)
				}
				n++
			}
			want := 0
			for _, st := range state {
				if st.present && st.group == group {
					want++
				}
			}
			if n != want {
				t.Fatalf("round %d: group %s lists %d entries, want %d", round, group, n, want)
			}
		}
		// Every file is named by an entry, but for spares made ahead.
		indexed := map[string]bool{}
		s.Each(func(in Instance) bool { indexed[in.File] = true; return true })
		filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				if info, e := d.Info(); e == nil && info.Size() == 0 && strings.HasPrefix(d.Name(), writerPrefix) {
					return nil
				}
				if !indexed[rel] {
					t.Errorf("round %d: file %s has no index entry", round, rel)
				}
			}
			return err
		})
		st := s.Stats()
		if st.Instances != int64(len(indexed)) {
			t.Fatalf("round %d: %d instances counted, %d indexed", round, st.Instances, len(indexed))
		}
		t.Logf("round %d: open found %+v; %d instances", round, rep, st.Instances)
		s.Close()
	}
}
