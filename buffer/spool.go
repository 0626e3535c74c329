package buffer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

const spoolFormat = "wardgate-spool/1"

var (
	instancesBucket = []byte("instances")
	groupsBucket    = []byte("groups")
)

// SpoolOptions tunes a Spool; the zero value is usable.
type SpoolOptions struct {
	// QuotaBytes bounds the bytes of stored files plus those being written;
	// 0 means no bound.
	QuotaBytes int64
	// Logger receives the spool's own reports; nil means slog.Default().
	Logger *slog.Logger
}

// Spool keeps DICOM instances (or any large blobs) as files under one folder,
// indexed in bbolt. See the package documentation for what is durable when.
//
// Layout: objects/<2 hex>/<key hash>-<content hash> for the files, tmp/ for
// files being written, index.db for the index.
type Spool struct {
	dir  string
	db   *bolt.DB
	c    *committer
	opts SpoolOptions
	log  *slog.Logger

	used     atomic.Int64 // bytes of indexed files
	count    atomic.Int64 // indexed instances
	inflight atomic.Int64 // bytes written to tmp files not yet committed
	counters spoolCounters
	keyLocks [64]sync.Mutex
	atOpen   ReconcileReport
	closed   atomic.Bool

	// spares are empty temporary files made ahead: creating a file costs
	// ~0.7 ms on an ext4 box, which would otherwise be paid while a
	// modality waits between two instances.
	spares     chan *os.File
	stopSpares chan struct{}
	sparesDone chan struct{}
}

// spareFiles is how many empty temporary files are kept ready.
const spareFiles = 4

// sparePrefix names the spare files, which the next open removes without
// counting them as stores that did not finish.
const sparePrefix = "spare-"

// makeSpares keeps the spares channel full until Close.
func (s *Spool) makeSpares() {
	defer close(s.sparesDone)
	for {
		f, err := s.newTemp(sparePrefix)
		if err != nil {
			// A full disk or a broken folder: Create makes its own file
			// and reports the error; try again later.
			select {
			case <-s.stopSpares:
				return
			case <-time.After(time.Second):
				continue
			}
		}
		select {
		case s.spares <- f:
		case <-s.stopSpares:
			f.Close()
			os.Remove(f.Name())
			return
		}
	}
}

// newTemp creates an empty temporary file.
func (s *Spool) newTemp(prefix string) (*os.File, error) {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	p := filepath.Join(s.dir, "tmp", prefix+hex.EncodeToString(rnd[:])+".part")
	return os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
}

type spoolCounters struct {
	stored, duplicates, replaced, removed, refusedFull, aborted atomic.Uint64
}

// Instance is a spool entry.
type Instance struct {
	// Key identifies the instance (the SOP Instance UID); storing the same
	// Key again keeps one copy.
	Key string `json:"key"`
	// Group gathers instances (the Study Instance UID), for Group().
	Group string `json:"group,omitempty"`
	// Attrs are header fields the caller wants kept in the index.
	Attrs map[string]string `json:"attrs,omitempty"`

	File   string    `json:"file"` // path relative to the spool folder
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	Stored time.Time `json:"stored"`
}

// StoreOutcome says what a Commit did.
type StoreOutcome int

const (
	// Stored: a new instance.
	Stored StoreOutcome = iota
	// Duplicate: the same Key with identical content was already there; one
	// copy is kept.
	Duplicate
	// Replaced: the same Key with different content; the new content replaced
	// the old.
	Replaced
)

func (o StoreOutcome) String() string {
	return [...]string{"stored", "duplicate", "replaced"}[o]
}

// ReconcileReport says what OpenSpool found and repaired after the previous
// run.
type ReconcileReport struct {
	Instances     int   // index entries kept
	Bytes         int64 // their bytes
	TempRemoved   int   // partial files of stores that never finished
	OrphanRemoved int   // complete files no index entry names (a Commit that did not return)
	MissingFile   int   // index entries dropped because their file was gone
	CutShort      int   // index entries of new instances whose store a crash cut short (never acknowledged)
	WrongSize     int   // index entries (and files) dropped because the file's size did not match
}

// SpoolStats is a snapshot for the status page and metrics.
type SpoolStats struct {
	Instances                                                   int64
	Bytes, InFlightBytes, QuotaBytes                            int64
	Stored, Duplicates, Replaced, Removed, RefusedFull, Aborted uint64
	AtOpen                                                      ReconcileReport
}

// OpenSpool opens (or creates) the spool in dir and reconciles it with its
// index: see ReconcileReport.
func OpenSpool(dir string, opts SpoolOptions) (*Spool, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := makeSpoolDirs(dir); err != nil {
		return nil, fmt.Errorf("spool: %w", diskFull(err))
	}
	indexPath := filepath.Join(dir, "index.db")
	db, created, err := openBolt(indexPath, spoolFormat)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, db: db, opts: opts, log: opts.Logger.With("store", "spool")}
	if err := s.reconcile(created); err != nil {
		db.Close()
		if created { // it holds nothing; a later open must not take it for the real index
			os.Remove(indexPath)
		}
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	makeReserve(filepath.Join(dir, "reserve"))
	s.c = newCommitter(db, filepath.Join(dir, "reserve"))
	s.spares, s.stopSpares, s.sparesDone = make(chan *os.File, spareFiles-1), make(chan struct{}), make(chan struct{})
	go s.makeSpares()
	r := s.atOpen
	s.log.Info("spool open", "dir", dir, "instances", r.Instances, "bytes", r.Bytes)
	if r.TempRemoved+r.OrphanRemoved+r.CutShort > 0 {
		s.log.Warn("removed what stores that did not finish left behind (never acknowledged)",
			"partial", r.TempRemoved, "unindexed", r.OrphanRemoved, "index_entries", r.CutShort)
	}
	if r.MissingFile+r.WrongSize > 0 {
		s.log.Error("spooled instances were lost outside wardgate (files deleted or damaged); their index entries were dropped",
			"missing", r.MissingFile, "wrong_size", r.WrongSize)
	}
	return s, nil
}

func (s *Spool) reconcile(created bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("index damaged (%v); move index.db aside and restart", r)
		}
	}()
	var rep ReconcileReport

	tmp := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	committing := map[string]bool{} // final names of new instances a crash caught mid-commit
	for _, e := range entries {
		if base, ok := strings.CutSuffix(e.Name(), commitSuffix); ok {
			committing[base] = true
		}
		// A spare nobody wrote to is not a store that did not finish.
		if info, err := e.Info(); err != nil || !strings.HasPrefix(e.Name(), sparePrefix) || info.Size() > 0 {
			rep.TempRemoved++
		}
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}

	// Every file under objects/, by its path relative to the spool.
	files := map[string]int64{}
	objects := filepath.Join(s.dir, "objects")
	err = filepath.WalkDir(objects, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		files[rel] = info.Size()
		return nil
	})
	if err != nil {
		return err
	}
	if created && len(files) > 0 {
		return fmt.Errorf("index.db is new but objects/ holds %d files: the index was lost or moved; "+
			"wardgate will not delete them: restore index.db or move objects/ aside", len(files))
	}

	err = s.db.Update(func(tx *bolt.Tx) error {
		ib, err := tx.CreateBucketIfNotExists(instancesBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(groupsBucket); err != nil {
			return err
		}
		var drop []Instance
		err = ib.ForEach(func(k, v []byte) error {
			var in Instance
			if err := json.Unmarshal(v, &in); err != nil {
				return fmt.Errorf("index entry %q: %w", k, err)
			}
			size, ok := files[in.File]
			switch {
			case !ok && committing[filepath.Base(in.File)]:
				rep.CutShort++
				drop = append(drop, in)
			case !ok:
				rep.MissingFile++
				drop = append(drop, in)
			case size != in.Size:
				rep.WrongSize++
				drop = append(drop, in)
			default:
				delete(files, in.File)
				rep.Instances++
				rep.Bytes += in.Size
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, in := range drop {
			if err := ib.Delete([]byte(in.Key)); err != nil {
				return err
			}
			if err := ungroup(tx, in.Group, in.Key); err != nil {
				return err
			}
			if _, ok := files[in.File]; ok { // wrong size: the file goes too
				delete(files, in.File)
				if err := os.Remove(filepath.Join(s.dir, in.File)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return diskFull(err)
	}
	for rel := range files {
		if err := os.Remove(filepath.Join(s.dir, rel)); err != nil {
			return err
		}
		rep.OrphanRemoved++
	}
	s.atOpen = rep
	s.used.Store(rep.Bytes)
	s.count.Store(int64(rep.Instances))
	return nil
}

// Create starts storing one instance: write its bytes to the returned
// SpoolWriter, then Commit or Abort it. The bytes go to a temporary file and
// are never held whole in memory.
func (s *Spool) Create() (*SpoolWriter, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var f *os.File
	select {
	case f = <-s.spares:
	default:
		var err error
		if f, err = s.newTemp(""); err != nil {
			return nil, fmt.Errorf("spool: %w", diskFull(err))
		}
	}
	return &SpoolWriter{s: s, f: f, tmp: f.Name(), h: sha256.New()}, nil
}

// Store is Create, a copy of r, and Commit.
func (s *Spool) Store(ctx context.Context, key, group string, attrs map[string]string, r io.Reader) (Instance, StoreOutcome, error) {
	w, err := s.Create()
	if err != nil {
		return Instance{}, 0, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return Instance{}, 0, err
	}
	return w.Commit(ctx, key, group, attrs)
}

// SpoolWriter receives one instance's bytes. It is not safe for concurrent use.
type SpoolWriter struct {
	s    *Spool
	f    *os.File
	tmp  string
	h    hash.Hash
	n    int64
	err  error
	done bool
	// flushed is how far writeback has been started (see startWriteback).
	flushed int64
}

// writebackChunk is how much an instance's file grows before the kernel is
// asked to start writing it out: the fsync at Commit then finds most of it
// on its way, which takes about a third off the wait a modality sees.
const writebackChunk = 256 << 10

// Write appends p to the instance. It fails with an error matching ErrFull
// when the spool's quota or the disk would be exceeded; the writer must then
// be aborted.
func (w *SpoolWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("spool: write after commit or abort")
	}
	s := w.s
	if q := s.opts.QuotaBytes; q > 0 {
		if s.used.Load()+s.inflight.Add(int64(len(p))) > q {
			s.inflight.Add(-int64(len(p)))
			s.counters.refusedFull.Add(1)
			w.err = &fullError{msg: fmt.Sprintf("spool holds %d of its %d bytes", s.used.Load()+s.inflight.Load(), q)}
			return 0, w.err
		}
	} else {
		s.inflight.Add(int64(len(p)))
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	w.h.Write(p[:n])
	s.inflight.Add(-int64(len(p) - n))
	if err != nil {
		w.err = fmt.Errorf("spool: %w", diskFull(err))
		return n, w.err
	}
	if w.n-w.flushed >= writebackChunk {
		startWriteback(w.f, w.flushed, w.n-w.flushed)
		w.flushed = w.n
	}
	return n, nil
}

// Size is the number of bytes written so far.
func (w *SpoolWriter) Size() int64 { return w.n }

// ReaderAt reads back what was written, for parsing headers before Commit.
func (w *SpoolWriter) ReaderAt() io.ReaderAt { return w.f }

// Abort discards the instance.
func (w *SpoolWriter) Abort() {
	if !w.done {
		w.discard()
		w.s.counters.aborted.Add(1)
	}
}

func (w *SpoolWriter) discard() {
	w.done = true
	w.f.Close()
	os.Remove(w.tmp)
	w.s.inflight.Add(-w.n)
}

// Commit makes the instance durable under key (see the package
// documentation) and returns its entry once it is. On an error nothing is
// stored and the writer is finished.
func (w *SpoolWriter) Commit(ctx context.Context, key, group string, attrs map[string]string) (Instance, StoreOutcome, error) {
	if w.done {
		return Instance{}, 0, errors.New("spool: commit after commit or abort")
	}
	if w.err != nil {
		w.Abort()
		return Instance{}, 0, w.err
	}
	if key == "" || len(key) > 1024 || len(group) > 1024 {
		w.Abort()
		return Instance{}, 0, fmt.Errorf("spool: key must be 1 to 1024 bytes and group at most 1024")
	}
	s := w.s
	sum := hex.EncodeToString(w.h.Sum(nil))
	kh := sha256.Sum256([]byte(key))
	khex := hex.EncodeToString(kh[:16])
	rel := filepath.Join("objects", khex[:2], khex+"-"+sum[:32])
	in := Instance{Key: key, Group: group, Attrs: attrs, File: rel, Size: w.n, SHA256: sum, Stored: time.Now().UTC()}

	fail := func(err error) (Instance, StoreOutcome, error) {
		w.Abort()
		return Instance{}, 0, err
	}
	v, err := json.Marshal(in)
	if err != nil {
		return fail(err)
	}

	// One Commit or Remove per key at a time, so that a rename and an index
	// change of the same key never interleave with another's.
	mu := s.keyLock(key)
	mu.Lock()
	defer mu.Unlock()

	prev, prevErr := s.getLocked(key)
	// The same content under the same key is already stored (a modality
	// sending again): keep that copy and do not touch its file.
	if prevErr == nil && prev.SHA256 == sum {
		w.discard()
		s.counters.duplicates.Add(1)
		return prev, Duplicate, nil
	}
	if errors.Is(prevErr, ErrNotFound) {
		return w.commitNew(ctx, in, v)
	}

	if err := w.f.Sync(); err != nil {
		return fail(fmt.Errorf("spool: fsync: %w", diskFull(err)))
	}
	if err := w.f.Close(); err != nil {
		return fail(fmt.Errorf("spool: %w", diskFull(err)))
	}
	final := filepath.Join(s.dir, rel)
	if err := s.ensureDir(filepath.Dir(final)); err != nil {
		return fail(fmt.Errorf("spool: %w", diskFull(err)))
	}
	if err := os.Rename(w.tmp, final); err != nil {
		return fail(fmt.Errorf("spool: %w", diskFull(err)))
	}
	w.done = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		// The file is in place but its name may not be durable: do not
		// acknowledge. A later identical store or the next open cleans up.
		s.inflight.Add(-w.n)
		return Instance{}, 0, fmt.Errorf("spool: fsync directory: %w", diskFull(err))
	}

	// Under the key lock, the entry cannot change between the check above
	// and this commit: final is a new name that no entry refers to yet.
	outcome := Stored
	var old Instance
	err = s.c.do(ctx, func(tx *bolt.Tx) error {
		ib := tx.Bucket(instancesBucket)
		if prev := ib.Get([]byte(key)); prev != nil {
			if err := json.Unmarshal(prev, &old); err != nil {
				return fmt.Errorf("index entry %q: %w", key, err)
			}
			outcome = Replaced
			if old.Group != group {
				if err := ungroup(tx, old.Group, key); err != nil {
					return err
				}
			}
		}
		if group != "" {
			g, err := tx.Bucket(groupsBucket).CreateBucketIfNotExists([]byte(group))
			if err != nil {
				return err
			}
			if err := g.Put([]byte(key), nil); err != nil {
				return err
			}
		}
		return ib.Put([]byte(key), v)
	})
	s.inflight.Add(-w.n)
	if err != nil {
		os.Remove(final)
		return Instance{}, 0, err
	}
	switch outcome {
	case Replaced:
		if old.File != rel {
			if err := os.Remove(filepath.Join(s.dir, old.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("could not remove the replaced copy; it will be removed at the next open", "err", err)
			}
		}
		s.used.Add(in.Size - old.Size)
		s.counters.replaced.Add(1)
	default:
		s.used.Add(in.Size)
		s.count.Add(1)
		s.counters.stored.Add(1)
	}
	return in, outcome, nil
}

// commitSuffix marks a temporary file whose index entry may already be
// written (commitNew).
const commitSuffix = ".commit"

// commitNew stores an instance under a key that has no entry yet. Its
// index entry is written while the file is made durable, not after: on a
// crash before both are done, the next open drops an entry whose file is
// missing (its temporary file, renamed first, says so) and removes a file
// no entry names — neither was acknowledged —
// and no earlier instance can be lost, as there is none under this key.
// This takes the index's two fsyncs off the path of every new instance.
// The caller holds the key's lock.
func (w *SpoolWriter) commitNew(ctx context.Context, in Instance, v []byte) (Instance, StoreOutcome, error) {
	s := w.s
	key := []byte(in.Key)
	// First a name that says which instance this is: if the process ends
	// after the index entry is written but before the file is in place,
	// the next open tells that entry (never acknowledged) from a lost file.
	committing := filepath.Join(s.dir, "tmp", filepath.Base(in.File)+commitSuffix)
	if err := os.Rename(w.tmp, committing); err != nil {
		w.Abort()
		return Instance{}, 0, fmt.Errorf("spool: %w", diskFull(err))
	}
	w.tmp = committing
	indexed := make(chan error, 1)
	go func() {
		indexed <- s.c.do(ctx, func(tx *bolt.Tx) error {
			if in.Group != "" {
				g, err := tx.Bucket(groupsBucket).CreateBucketIfNotExists([]byte(in.Group))
				if err != nil {
					return err
				}
				if err := g.Put(key, nil); err != nil {
					return err
				}
			}
			return tx.Bucket(instancesBucket).Put(key, v)
		})
	}()
	final := filepath.Join(s.dir, in.File)
	fileErr := func() error {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("spool: fsync: %w", diskFull(err))
		}
		if err := w.f.Close(); err != nil {
			return fmt.Errorf("spool: %w", diskFull(err))
		}
		if err := s.ensureDir(filepath.Dir(final)); err != nil {
			return fmt.Errorf("spool: %w", diskFull(err))
		}
		if err := os.Rename(w.tmp, final); err != nil {
			return fmt.Errorf("spool: %w", diskFull(err))
		}
		w.done = true
		if err := syncDir(filepath.Dir(final)); err != nil {
			return fmt.Errorf("spool: fsync directory: %w", diskFull(err))
		}
		return nil
	}()
	indexErr := <-indexed
	s.inflight.Add(-w.n)
	if fileErr != nil || indexErr != nil {
		if indexErr == nil {
			// Take the entry back: its file is not durable.
			if err := s.c.doFreeing(context.Background(), func(tx *bolt.Tx) error {
				if in.Group != "" {
					if err := ungroup(tx, in.Group, in.Key); err != nil {
						return err
					}
				}
				return tx.Bucket(instancesBucket).Delete(key)
			}); err != nil {
				s.log.Error("an index entry of an instance that was not stored could not be removed; the next open drops it", "err", err)
			}
		}
		if w.done {
			os.Remove(final)
		} else {
			w.f.Close()
			os.Remove(w.tmp)
			w.done = true
		}
		if fileErr != nil {
			return Instance{}, 0, fileErr
		}
		return Instance{}, 0, indexErr
	}
	s.used.Add(in.Size)
	s.count.Add(1)
	s.counters.stored.Add(1)
	return in, Stored, nil
}

// makeSpoolDirs makes the spool's folders, including all 256 object
// folders, and fsyncs their parents once, so that no store has to wait for
// (or race with) a new folder becoming durable.
func makeSpoolDirs(dir string) error {
	objects := filepath.Join(dir, "objects")
	for _, d := range []string{dir, objects, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	for i := 0; i < 256; i++ {
		if err := os.MkdirAll(filepath.Join(objects, fmt.Sprintf("%02x", i)), 0o700); err != nil {
			return err
		}
	}
	for _, d := range []string{objects, dir, filepath.Dir(dir)} {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir makes an object folder if it is missing, durably: the new
// folder's name is fsynced in objects/ before any file goes in it.
func (s *Spool) ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ungroup removes key from group's index, and the group when it is empty.
func ungroup(tx *bolt.Tx, group, key string) error {
	gb := tx.Bucket(groupsBucket)
	g := gb.Bucket([]byte(group))
	if group == "" || g == nil {
		return nil
	}
	if err := g.Delete([]byte(key)); err != nil {
		return err
	}
	if k, _ := g.Cursor().First(); k == nil {
		return gb.DeleteBucket([]byte(group))
	}
	return nil
}

func (s *Spool) keyLock(key string) *sync.Mutex {
	kh := sha256.Sum256([]byte(key))
	return &s.keyLocks[kh[0]%byte(len(s.keyLocks))]
}

// Get returns the entry for key.
func (s *Spool) Get(key string) (Instance, error) {
	mu := s.keyLock(key)
	mu.Lock()
	defer mu.Unlock()
	return s.getLocked(key)
}

func (s *Spool) getLocked(key string) (Instance, error) {
	var in Instance
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(instancesBucket).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("spool: instance %w", ErrNotFound)
		}
		return json.Unmarshal(v, &in)
	})
	return in, err
}

// Open returns the stored bytes of key. The file stays readable after the
// instance is replaced or removed, until it is closed.
func (s *Spool) Open(key string) (*os.File, Instance, error) {
	mu := s.keyLock(key)
	mu.Lock()
	defer mu.Unlock()
	in, err := s.getLocked(key)
	if err != nil {
		return nil, in, err
	}
	f, err := os.Open(filepath.Join(s.dir, in.File))
	return f, in, err
}

// Path returns the absolute path of an instance's file.
func (s *Spool) Path(in Instance) string { return filepath.Join(s.dir, in.File) }

// Group returns the entries of one group (study), ordered by key.
func (s *Spool) Group(group string) ([]Instance, error) {
	var out []Instance
	err := s.db.View(func(tx *bolt.Tx) error {
		g := tx.Bucket(groupsBucket).Bucket([]byte(group))
		if g == nil {
			return nil
		}
		ib := tx.Bucket(instancesBucket)
		return g.ForEach(func(k, _ []byte) error {
			var in Instance
			if v := ib.Get(k); v != nil {
				if err := json.Unmarshal(v, &in); err != nil {
					return err
				}
				out = append(out, in)
			}
			return nil
		})
	})
	return out, err
}

// Each calls fn for every entry, ordered by key, until fn returns false.
func (s *Spool) Each(fn func(Instance) bool) error {
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(instancesBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var in Instance
			if err := json.Unmarshal(v, &in); err != nil {
				return fmt.Errorf("index entry %q: %w", k, err)
			}
			if !fn(in) {
				return nil
			}
		}
		return nil
	})
}

// Remove deletes key's entry and then its file (a crash in between leaves a
// file without an entry, which the next open removes).
func (s *Spool) Remove(ctx context.Context, key string) error {
	return s.remove(ctx, key, "")
}

// RemoveVersion is Remove for the content whose SHA-256 (Instance.SHA256) is
// sha256 only: when key was replaced by other content since the caller read
// its entry, nothing is removed and the error matches ErrNotFound.
func (s *Spool) RemoveVersion(ctx context.Context, key, sha256 string) error {
	if sha256 == "" {
		return fmt.Errorf("spool: RemoveVersion needs the content's SHA-256")
	}
	return s.remove(ctx, key, sha256)
}

func (s *Spool) remove(ctx context.Context, key, sha string) error {
	mu := s.keyLock(key)
	mu.Lock()
	defer mu.Unlock()
	var in Instance
	err := s.c.doFreeing(ctx, func(tx *bolt.Tx) error {
		ib := tx.Bucket(instancesBucket)
		v := ib.Get([]byte(key))
		if v == nil {
			return fmt.Errorf("spool: instance %w", ErrNotFound)
		}
		if err := json.Unmarshal(v, &in); err != nil {
			return err
		}
		if sha != "" && in.SHA256 != sha {
			return fmt.Errorf("spool: instance %w in that version (it was replaced)", ErrNotFound)
		}
		if err := ungroup(tx, in.Group, key); err != nil {
			return err
		}
		return ib.Delete([]byte(key))
	})
	if err != nil {
		return err
	}
	s.used.Add(-in.Size)
	s.count.Add(-1)
	s.counters.removed.Add(1)
	if err := os.Remove(filepath.Join(s.dir, in.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("could not remove a spooled file; it will be removed at the next open", "err", err)
	}
	return nil
}

// Stats returns a snapshot of the spool.
func (s *Spool) Stats() SpoolStats {
	c := &s.counters
	return SpoolStats{
		Instances: s.count.Load(), Bytes: s.used.Load(), InFlightBytes: s.inflight.Load(),
		QuotaBytes: s.opts.QuotaBytes,
		Stored:     c.stored.Load(), Duplicates: c.duplicates.Load(), Replaced: c.replaced.Load(),
		Removed: c.removed.Load(), RefusedFull: c.refusedFull.Load(), Aborted: c.aborted.Load(),
		AtOpen: s.atOpen,
	}
}

// Dir is the spool's folder.
func (s *Spool) Dir() string { return s.dir }

// Close waits for queued index writes and closes the index. Writers still
// open are not committed.
func (s *Spool) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.stopSpares != nil {
		close(s.stopSpares)
		<-s.sparesDone
	}
	for s.spares != nil {
		select {
		case f := <-s.spares:
			f.Close()
			os.Remove(f.Name())
			continue
		default:
		}
		break
	}
	s.c.close()
	return s.db.Close()
}

// Unfinished counts the temporary files of stores in progress (or left by
// a writer that was neither committed nor aborted), not the empty spares
// kept ready.
func (s *Spool) Unfinished() (int, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "tmp"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Size() == 0 && strings.HasPrefix(e.Name(), sparePrefix) {
			continue
		}
		n++
	}
	return n, nil
}
