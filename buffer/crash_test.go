package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The crash tests run this test binary again as a child (WARDGATE_CRASH_CHILD
// names the role) that works on a store and prints each operation as it is
// acknowledged; the parent kills it with SIGKILL at a random moment, opens the
// store itself and checks every acknowledged operation against what is on disk.
func TestMain(m *testing.M) {
	switch os.Getenv("WARDGATE_CRASH_CHILD") {
	case "outbox":
		outboxChild(os.Getenv("WARDGATE_CRASH_PATH"), os.Getenv("WARDGATE_CRASH_ROUND"))
		os.Exit(0)
	case "spool":
		spoolChild(os.Getenv("WARDGATE_CRASH_PATH"), os.Getenv("WARDGATE_CRASH_ROUND"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// say writes one line in one write(2), so lines of concurrent goroutines never
// mix and a line is either wholly in the pipe or not at all.
var sayMu sync.Mutex

func say(format string, args ...any) {
	sayMu.Lock()
	os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n")
	sayMu.Unlock()
}

func outboxChild(path, round string) {
	o, err := OpenOutbox(path, OutboxOptions{Logger: quiet, Backoff: Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Multiplier: 2}})
	if err != nil {
		say("ERR %v", err)
		os.Exit(3)
	}
	say("OPEN")
	ctx := context.Background()
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; ; i++ {
				n := 1 + i%3 // calls of one to three items
				batch := make([]Item, n)
				names := make([]string, n)
				for j := range batch {
					names[j] = fmt.Sprintf("r%s-g%d-%d-%d", round, g, i, j)
					batch[j] = Item{Key: fmt.Sprintf("dev-%d", g%4), Kind: "obs", Payload: []byte(names[j] + strings.Repeat(".", 300))}
				}
				if _, err := o.Append(ctx, batch...); err != nil {
					say("ERR append %v", err)
					os.Exit(3)
				}
				for _, nm := range names {
					say("A %s", nm)
				}
			}
		}()
	}
	// One deliverer acks most items, nacks some and dead-letters a few,
	// announcing each intent before the call and each result after it.
	r := rand.New(rand.NewPCG(1, 2))
	for {
		b, err := o.Lease(ctx, 1+r.IntN(50), time.Minute)
		if err != nil {
			say("ERR lease %v", err)
			os.Exit(3)
		}
		var ack, nack, dead []uint64
		var ackN, deadN []string
		for _, it := range b.Items {
			name := string(bytes.TrimRight(it.Payload, "."))
			switch x := r.IntN(20); {
			case x < 16:
				ack, ackN = append(ack, it.ID), append(ackN, name)
			case x < 19:
				nack = append(nack, it.ID)
			default:
				dead, deadN = append(dead, it.ID), append(deadN, name)
			}
		}
		for _, nm := range ackN {
			say("d %s", nm)
		}
		for _, nm := range deadN {
			say("x %s", nm)
		}
		if len(nack) > 0 {
			if err := b.Nack(ctx, "HTTP 503", 0, nack...); err != nil {
				say("ERR nack %v", err)
			}
		}
		if len(dead) > 0 {
			if err := b.DeadLetter(ctx, "HTTP 422", dead...); err != nil {
				say("ERR dead %v", err)
			}
			for _, nm := range deadN {
				say("X %s", nm)
			}
		}
		if len(ack) > 0 {
			if err := b.Ack(ctx, ack...); err != nil {
				say("ERR ack %v", err)
			}
			for _, nm := range ackN {
				say("D %s", nm)
			}
		}
	}
}

// runChild starts the child, kills it with SIGKILL after a random delay
// counted from its first line, and returns every line it printed.
func runChild(t *testing.T, role, path string, round int, r *rand.Rand) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "WARDGATE_CRASH_CHILD="+role, "WARDGATE_CRASH_PATH="+path, fmt.Sprintf("WARDGATE_CRASH_ROUND=%d", round))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if len(lines) == 0 {
				close(first)
			}
			lines = append(lines, sc.Text())
		}
		if len(lines) == 0 {
			close(first)
		}
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child printed nothing in 30 s")
	}
	time.Sleep(time.Duration(20+r.IntN(300)) * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	cmd.Wait()
	for _, l := range lines {
		if strings.HasPrefix(l, "ERR") {
			t.Fatalf("round %d: child reported %s", round, l)
		}
	}
	if len(lines) == 0 || lines[0] != "OPEN" {
		t.Fatalf("round %d: child did not open the store: %q", round, lines)
	}
	return lines
}

func TestOutboxSurvivesSIGKILL(t *testing.T) {
	rounds := 25
	if testing.Short() {
		rounds = 5
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	state := map[string]string{} // name → last acknowledged fate: A, d, D, x, X
	totalAcked := 0
	for round := 1; round <= rounds; round++ {
		for _, l := range runChild(t, "outbox", path, round, r)[1:] {
			op, name, _ := strings.Cut(l, " ")
			switch op {
			case "A":
				if _, ok := state[name]; !ok { // a D or x may have come first
					state[name] = "A"
				}
				totalAcked++
			case "d", "x":
				state[name] = op
			case "D", "X":
				state[name] = op
			}
		}

		o, err := OpenOutbox(path, OutboxOptions{Logger: quiet})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if err := o.db.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("round %d: bbolt check: %v", round, err)
		}
		live, dead := map[string]int{}, map[string]int{}
		waiting, _ := o.Waiting(0)
		for _, it := range waiting {
			full, _ := o.db.Begin(false)
			v := full.Bucket(itemsBucket).Get(idKey(it.ID))
			d, _ := decodeItem(it.ID, v, true)
			full.Rollback()
			live[string(bytes.TrimRight(d.Payload, "."))]++
		}
		dls, _ := o.DeadLetters(0)
		for _, d := range dls {
			dead[string(bytes.TrimRight(d.Payload, "."))]++
		}
		for name, n := range live {
			if n > 1 || dead[name] > 0 {
				t.Fatalf("round %d: %s stored %d times and %d times dead", round, name, n, dead[name])
			}
		}
		for name, fate := range state {
			l, d := live[name], dead[name]
			switch fate {
			case "A": // appended and acknowledged, not yet delivered
				if l+d != 1 || d != 0 {
					t.Fatalf("round %d: acknowledged %s is there %d times (%d dead)", round, name, l+d, d)
				}
			case "d": // an ack was under way: delivered or still waiting, once at most
				if l > 1 || d != 0 {
					t.Fatalf("round %d: %s with an ack under way: %d live, %d dead", round, name, l, d)
				}
			case "D": // delivered: gone for good
				if l+d != 0 {
					t.Fatalf("round %d: delivered %s came back (%d live, %d dead)", round, name, l, d)
				}
			case "x":
				if l+d != 1 {
					t.Fatalf("round %d: %s being dead-lettered is there %d times", round, name, l+d)
				}
			case "X":
				if d != 1 || l != 0 {
					t.Fatalf("round %d: dead-lettered %s: %d live, %d dead", round, name, l, d)
				}
			}
		}
		if got := o.Stats(); got.Waiting != len(waiting) || got.Dead != len(dls) {
			t.Fatalf("round %d: stats %+v disagree with the contents", round, got)
		}
		t.Logf("round %d: %d waiting, %d dead, %d leases released, %d appends acknowledged so far",
			round, len(waiting), len(dls), o.Stats().AtOpen.LeasesReleased, totalAcked)
		o.Close()
	}
}

func spoolChild(dir, round string) {
	s, err := OpenSpool(dir, SpoolOptions{Logger: quiet})
	if err != nil {
		say("ERR %v", err)
		os.Exit(3)
	}
	say("OPEN")
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), uint64(len(round))))
			for i := 0; ; i++ {
				key := fmt.Sprintf("1.2.826.0.%s.%d.%d", round, g, i)
				if i > 0 && i%5 == 0 { // remove an earlier one now and then
					old := fmt.Sprintf("1.2.826.0.%s.%d.%d", round, g, i-3)
					say("r %s", old)
					if err := s.Remove(ctx, old); err != nil {
						say("ERR remove %v", err)
						os.Exit(3)
					}
					say("R %s", old)
				}
				data := randomBytes(r.Uint64(), 10<<10+r.IntN(600<<10))
				// Stream in small pieces, as from a socket.
				w, err := s.Create()
				if err != nil {
					say("ERR %v", err)
					os.Exit(3)
				}
				for p := data; len(p) > 0; {
					n := min(len(p), 16<<10)
					if _, err := w.Write(p[:n]); err != nil {
						say("ERR write %v", err)
						os.Exit(3)
					}
					p = p[n:]
				}
				if _, _, err := w.Commit(ctx, key, "study-"+round, nil); err != nil {
					say("ERR commit %v", err)
					os.Exit(3)
				}
				say("S %s %s", key, sha(data))
			}
		}()
	}
	wg.Wait()
}

func TestSpoolSurvivesSIGKILL(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	dir := filepath.Join(t.TempDir(), "spool")
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	stored := map[string]string{} // key → sha of acknowledged stores
	removing := map[string]bool{}
	removed := map[string]bool{}
	for round := 1; round <= rounds; round++ {
		for _, l := range runChild(t, "spool", dir, round, r)[1:] {
			f := strings.Fields(l)
			switch f[0] {
			case "S":
				stored[f[1]] = f[2]
			case "r":
				removing[f[1]] = true
			case "R":
				removed[f[1]] = true
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
		if n := countFiles(t, filepath.Join(dir, "tmp")); n != 0 {
			t.Fatalf("round %d: %d partial files visible after open", round, n)
		}
		indexed := map[string]bool{}
		s.Each(func(in Instance) bool {
			indexed[in.File] = true
			if _, err := os.Stat(s.Path(in)); err != nil {
				t.Errorf("round %d: index entry %s has no file", round, in.Key)
			}
			return true
		})
		filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				if info, e := d.Info(); e == nil && info.Size() == 0 && strings.HasPrefix(d.Name(), writerPrefix) {
					return nil // a spare made ahead
				}
				if !indexed[rel] {
					t.Errorf("round %d: file %s has no index entry", round, rel)
				}
			}
			return err
		})
		for key, sum := range stored {
			f, _, err := s.Open(key)
			switch {
			case removed[key]:
				if err == nil {
					f.Close()
					t.Fatalf("round %d: removed %s is back", round, key)
				}
			case removing[key]:
				if err == nil {
					f.Close()
				}
			case err != nil:
				t.Fatalf("round %d: acknowledged %s is missing: %v", round, key, err)
			default:
				got, _ := io.ReadAll(f)
				f.Close()
				if sha(got) != sum {
					t.Fatalf("round %d: %s has other bytes than were stored", round, key)
				}
			}
		}
		t.Logf("round %d: %d instances acknowledged so far; open found %+v", round, len(stored), rep)
		s.Close()
	}
}
