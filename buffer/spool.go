package buffer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// spoolFormat is the index's format marker. /2 added the index journal:
// a /1 index is read as it is (and marked /2), while a release that knows
// only /1 refuses a /2 index instead of missing the journal's entries.
var spoolFormat = SpoolFormat.String()

var spoolOlderFormats = []string{"wardgate-spool/1"}

var (
	instancesBucket = []byte("instances")
	groupsBucket    = []byte("groups")
	spoolMetaBucket = []byte("spool_meta")
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
// Layout: objects/<2 hex>/w-<random> for the files (made ahead, their names
// durable before a byte is written to them; objects/<2 hex>/<key
// hash>-<content hash> for files stored by earlier releases), index.db for
// the index and index.journal for its newest entries (see spool_journal.go);
// tmp/ held files being written before this layout and is emptied at open.
type Spool struct {
	dir  string
	db   *bolt.DB
	c    *committer
	opts SpoolOptions
	log  *slog.Logger

	used     atomic.Int64 // bytes of indexed files
	count    atomic.Int64 // indexed instances
	inflight atomic.Int64 // bytes written to files not yet committed
	writing  atomic.Int64 // writers neither committed nor aborted
	counters spoolCounters
	keyLocks [64]sync.Mutex
	atOpen   ReconcileReport
	closed   atomic.Bool

	// spares are empty files made ahead in objects/, each with its name
	// already durable (its folder fsynced): creating a file and fsyncing
	// its folder would otherwise be paid while a modality waits between two
	// instances, and a file written where it stays needs no rename and no
	// folder fsync before Success.
	spares     chan *os.File
	stopSpares chan struct{}
	sparesDone chan struct{}

	// journal holds the index entries of new instances until the applier
	// has moved them into index.db; overlay has the same entries for
	// readers meanwhile (key → entry and its journal sequence number).
	journal *spoolJournal
	// backupMu holds file removals while a backup links the files its
	// copy of the index names.
	backupMu  sync.RWMutex
	ovMu      sync.Mutex
	overlay   map[string]overlayEntry
	applyMu   sync.Mutex // one apply at a time (the applier, or a flush before a direct index write)
	applied   uint64     // last journal sequence number in index.db, under applyMu
	applyKick chan struct{}
	stopApply chan struct{}
	applyDone chan struct{}
}

type overlayEntry struct {
	in  Instance
	seq uint64
}

// spareFiles is how many empty files are kept ready.
const spareFiles = 4

// writerPrefix names the files writers write: a spare nobody wrote to is
// empty and removed at the next open without being counted.
const writerPrefix = "w-"

// makeSpares keeps the spares channel full until Close, a few files per
// folder fsync.
func (s *Spool) makeSpares() {
	defer close(s.sparesDone)
	for {
		fs, err := s.newSpares(spareFiles)
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
		for i, f := range fs {
			select {
			case s.spares <- f:
			case <-s.stopSpares:
				for _, f := range fs[i:] {
					f.Close()
					os.Remove(f.Name())
				}
				return
			}
		}
	}
}

// newSpares creates n empty files in one object folder and makes their
// names durable.
func (s *Spool) newSpares(n int) ([]*os.File, error) {
	var rnd [13]byte
	_, _ = rand.Read(rnd[:])
	dir := filepath.Join(s.dir, "objects", fmt.Sprintf("%02x", rnd[12]))
	if err := s.ensureDir(dir); err != nil {
		return nil, err
	}
	var fs []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, f := range fs {
			f.Close()
			os.Remove(f.Name())
		}
		return nil, err
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			_, _ = rand.Read(rnd[:12])
		}
		f, err := os.OpenFile(filepath.Join(dir, writerPrefix+hex.EncodeToString(rnd[:12])), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fail(err)
		}
		fs = append(fs, f)
	}
	if err := syncDir(dir); err != nil {
		return fail(err)
	}
	return fs, nil
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

	File string `json:"file"` // path relative to the spool folder
	Size int64  `json:"size"`
	// SHA256 is the hash of the content after its first HashFrom bytes
	// (SpoolWriter.WriteHeader).
	SHA256   string    `json:"sha256"`
	HashFrom int64     `json:"hash_from,omitempty"`
	Stored   time.Time `json:"stored"`
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
	db, created, err := openBoltUpgrading(indexPath, spoolFormat, nil, spoolOlderFormats)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, db: db, opts: opts, log: opts.Logger.With("store", "spool"), overlay: map[string]overlayEntry{}}
	if err := s.reconcile(created); err != nil {
		db.Close()
		s.journal.close()
		if created { // it holds nothing; a later open must not take it for the real index
			os.Remove(indexPath)
		}
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	makeReserve(filepath.Join(dir, "reserve"), reserveSizeFor(opts.QuotaBytes, 0))
	s.c = newCommitter(db, filepath.Join(dir, "reserve"))
	s.spares, s.stopSpares, s.sparesDone = make(chan *os.File, spareFiles-1), make(chan struct{}), make(chan struct{})
	go s.makeSpares()
	s.applyKick, s.stopApply, s.applyDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.applier()
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

	// A new index.db beside files: the index was lost or moved. Refuse
	// before anything changes, the journal included: its entries not in
	// the index.db the operator puts back are the only record of the
	// instances they name.
	if created {
		files, err := s.objectFiles()
		if err != nil {
			return err
		}
		if len(files) > 0 {
			return fmt.Errorf("index.db is new but objects/ holds %d files: the index was lost or moved; "+
				"wardgate will not delete them: restore index.db or move objects/ aside", len(files))
		}
	}

	// Index entries journalled after the last apply: each is kept when its
	// file is whole (size and SHA-256 as recorded), else it belongs to a
	// store the crash cut short, never acknowledged.
	var applied uint64
	s.db.View(func(tx *bolt.Tx) error { applied = getApplied(tx); return nil })
	j, recs, err := openSpoolJournal(filepath.Join(s.dir, "index.journal"), applied)
	if err != nil {
		return fmt.Errorf("index journal: %w", err)
	}
	s.journal = j
	// A record that names no key, or a file outside objects/, was not
	// written by a Commit: it is dropped, and no file is touched for it.
	sane := recs[:0]
	for _, r := range recs {
		if r.Entry.Key != "" && filepath.IsLocal(r.Entry.File) && strings.HasPrefix(filepath.Clean(r.Entry.File), "objects"+string(filepath.Separator)) {
			sane = append(sane, r)
		} else {
			rep.CutShort++
		}
	}
	recs = sane
	if len(recs) > 0 {
		// A record's key already in index.db was applied (the applied mark
		// can lag behind entries applied while an earlier record's Commit
		// had not finished), or was written straight to index.db since
		// (a replacement or a removal came later): index.db has the last
		// word either way.
		indexed := map[string]bool{}
		s.db.View(func(tx *bolt.Tx) error {
			if ib := tx.Bucket(instancesBucket); ib != nil {
				for _, r := range recs {
					if ib.Get([]byte(r.Entry.Key)) != nil {
						indexed[r.Entry.Key] = true
					}
				}
			}
			return nil
		})
		// Of two records of one key (stored, removed, stored again), the
		// later is the key's entry: the earlier's group must not keep
		// listing the key, and its file, when a power cut kept it, is
		// then removed as one no entry names.
		lastOf := map[string]uint64{}
		for _, r := range recs {
			if !indexed[r.Entry.Key] && s.whole(r.Entry) {
				lastOf[r.Entry.Key] = r.Seq
			}
		}
		var keep []Instance
		for _, r := range recs {
			if indexed[r.Entry.Key] {
				continue
			}
			last, ok := lastOf[r.Entry.Key]
			switch {
			case ok && last == r.Seq:
				keep = append(keep, r.Entry)
				continue
			case ok && last > r.Seq:
				continue // an earlier store of a key stored again
			}
			rep.CutShort++
			if err := os.Remove(filepath.Join(s.dir, r.Entry.File)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		last := recs[len(recs)-1].Seq
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{instancesBucket, groupsBucket} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			for _, in := range keep {
				if err := putEntry(tx, in); err != nil {
					return err
				}
			}
			return setApplied(tx, last)
		})
		if err != nil {
			return diskFull(err)
		}
		applied = last
	}
	s.applied = applied
	// Every record is in index.db now: the whole file is zeroed, so that
	// no record read past a torn one (of an earlier round) can follow a new
	// one of the same length at the next open.
	if err := j.wipe(); err != nil {
		return fmt.Errorf("index journal: %w", diskFull(err))
	}
	if err := j.restart(applied); err != nil {
		return fmt.Errorf("index journal: %w", diskFull(err))
	}

	tmp := filepath.Join(s.dir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	// Left by a release that wrote into tmp/ and renamed: a name ending in
	// .commit is a new instance a crash caught mid-commit; a spare- file
	// with nothing in it is a spare that was never used. A backup- folder
	// holds links of a backup a stop cut short: nothing of the spool's own.
	committing := map[string]bool{}
	for _, e := range entries {
		if base, ok := strings.CutSuffix(e.Name(), ".commit"); ok {
			committing[base] = true
		}
		if info, err := e.Info(); err != nil || !(strings.HasPrefix(e.Name(), "spare-") && info.Size() == 0 || strings.HasPrefix(e.Name(), "backup-") && info.IsDir()) {
			rep.TempRemoved++
		}
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}

	files, err := s.objectFiles()
	if err != nil {
		return err
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
	for rel, size := range files {
		if err := os.Remove(filepath.Join(s.dir, rel)); err != nil {
			return err
		}
		switch {
		case size == 0 && strings.HasPrefix(filepath.Base(rel), writerPrefix):
			// A spare made ahead and never written to.
		case strings.HasPrefix(filepath.Base(rel), writerPrefix):
			rep.TempRemoved++ // a store that never reached Commit, or failed in it
		default:
			rep.OrphanRemoved++
		}
	}
	s.atOpen = rep
	s.used.Store(rep.Bytes)
	s.count.Store(int64(rep.Instances))
	return nil
}

// objectFiles returns every file under objects/, by its path relative to
// the spool, with its size.
func (s *Spool) objectFiles() (map[string]int64, error) {
	files := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(s.dir, "objects"), func(p string, d fs.DirEntry, err error) error {
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
	return files, err
}

// whole reports whether in's file is there with the size and SHA-256 its
// entry records.
func (s *Spool) whole(in Instance) bool {
	f, err := os.Open(filepath.Join(s.dir, in.File))
	if err != nil {
		return false
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || info.Size() != in.Size || in.HashFrom > in.Size {
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, in.HashFrom, in.Size-in.HashFrom)); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == in.SHA256
}

// Create starts storing one instance: write its bytes to the returned
// SpoolWriter, then Commit or Abort it. The bytes go to the file the
// instance will keep (its name durable already) and are never held whole
// in memory.
func (s *Spool) Create() (*SpoolWriter, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var f *os.File
	select {
	case f = <-s.spares:
	default:
		fs, err := s.newSpares(1)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", diskFull(err))
		}
		f = fs[0]
	}
	rel, _ := filepath.Rel(s.dir, f.Name())
	s.writing.Add(1)
	return &SpoolWriter{s: s, f: f, path: f.Name(), rel: rel, h: newHasher()}, nil
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
	path string // the file's absolute path
	rel  string // and relative to the spool
	h    *hasher
	n    int64
	// hashFrom is where the hashed content starts (WriteHeader).
	hashFrom int64
	err      error
	done     bool
	// flushed is how far writeback has been started (see startWriteback).
	flushed int64
}

// WriteHeader writes p, before any Write, as a header that is stored but
// is not part of the content's identity: Instance.SHA256 covers what comes
// after it (for a DICOM instance, the data set and not the meta header that
// names the sender), so the same content from two senders is one.
func (w *SpoolWriter) WriteHeader(p []byte) (int, error) {
	if w.n != w.hashFrom {
		return 0, errors.New("spool: WriteHeader after Write")
	}
	n, err := w.write(p, false)
	w.hashFrom = w.n
	return n, err
}

// writebackChunk is how much an instance's file grows before the kernel is
// asked to start writing it out: the fsync at Commit then finds most of it
// on its way, which takes about a third off the wait a modality sees.
const writebackChunk = 256 << 10

// Write appends p to the instance. It fails with an error matching ErrFull
// when the spool's quota or the disk would be exceeded; the writer must then
// be aborted.
func (w *SpoolWriter) Write(p []byte) (int, error) { return w.write(p, true) }

func (w *SpoolWriter) write(p []byte, hashed bool) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done || w.h.closed {
		return 0, errors.New("spool: write after commit, abort or SHA256")
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
	if hashed {
		w.h.write(p[:n])
	}
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

// SHA256 is the hash of the content written so far after the header: the
// Instance.SHA256 that Commit would record.
// No bytes may be written after it.
func (w *SpoolWriter) SHA256() string { return w.h.sumHex() }

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
	w.h.stop()
	w.done = true
	w.f.Close()
	os.Remove(w.path)
	w.s.inflight.Add(-w.n)
	w.s.writing.Add(-1)
}

// finish ends a writer whose file stays (committed) or is dealt with by
// its caller.
func (w *SpoolWriter) finish() {
	w.done = true
	w.s.inflight.Add(-w.n)
	w.s.writing.Add(-1)
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
	sum := w.h.sumHex()
	in := Instance{Key: key, Group: group, Attrs: attrs, File: w.rel, Size: w.n, HashFrom: w.hashFrom, SHA256: sum, Stored: time.Now().UTC()}

	fail := func(err error) (Instance, StoreOutcome, error) {
		w.Abort()
		return Instance{}, 0, err
	}

	// One Commit or Remove per key at a time, so that an index change of
	// the same key never interleaves with another's.
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
		return w.commitNew(in)
	}

	// A replacement: the file is made durable first, then the entry
	// points to it, straight in index.db (after any journalled entry).
	if err := w.f.Sync(); err != nil {
		return fail(fmt.Errorf("spool: fsync: %w", diskFull(err)))
	}
	if err := w.f.Close(); err != nil {
		return fail(fmt.Errorf("spool: %w", diskFull(err)))
	}
	v, err := json.Marshal(in)
	if err != nil {
		return fail(err)
	}
	if err := s.flushOverlay(ctx, false); err != nil {
		return fail(err)
	}
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
	if err != nil {
		return fail(err)
	}
	// Counted as used before it stops counting as in flight: a quota
	// check in between must not see the bytes in neither.
	switch outcome {
	case Replaced:
		s.used.Add(in.Size - old.Size)
		s.counters.replaced.Add(1)
	default:
		s.used.Add(in.Size)
		s.count.Add(1)
		s.counters.stored.Add(1)
	}
	w.finish()
	if outcome == Replaced && old.File != in.File {
		s.removeFile(old.File, "could not remove the replaced copy; it will be removed at the next open")
	}
	return in, outcome, nil
}

// removeFile removes a file no entry names any more, and makes that
// durable: a journal record of its key that the applied mark has not
// passed yet must not find it whole after a power cut, and bring back an
// instance that was removed or replaced.
func (s *Spool) removeFile(rel, warning string) {
	s.backupMu.RLock()
	defer s.backupMu.RUnlock()
	p := filepath.Join(s.dir, rel)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn(warning, "err", err)
		return
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		s.log.Warn("the removal of a spooled file may not be durable", "err", err)
	}
}

// commitNew stores an instance under a key that has no entry yet: its
// entry goes to the journal while the file is fdatasynced, the two at
// once, and Commit returns when both are durable: one flush of each file,
// no rename, no folder fsync. A crash after the entry is durable but
// before the file is leaves an entry the next open checks against the
// file's size and SHA-256, and drops (never acknowledged). No earlier
// instance can be lost, as there is none under this key. The caller holds
// the key's lock.
func (w *SpoolWriter) commitNew(in Instance) (Instance, StoreOutcome, error) {
	s := w.s
	seq, err := s.journal.append(in)
	if err != nil {
		w.Abort()
		return Instance{}, 0, err
	}
	defer s.journal.done(seq)
	journalled := make(chan error, 1)
	go func() { journalled <- s.journal.sync(seq) }()
	fileErr := fdatasyncFile(w.f)
	if fileErr == nil {
		fileErr = w.f.Close()
	} else {
		w.f.Close()
	}
	journalErr := <-journalled
	if fileErr != nil || journalErr != nil {
		// The entry may be durable without its file: the next open drops
		// it, as it will not match. Until then nobody sees it.
		w.done = true
		os.Remove(w.path)
		s.inflight.Add(-w.n)
		s.writing.Add(-1)
		if fileErr != nil {
			return Instance{}, 0, fmt.Errorf("spool: fsync: %w", diskFull(fileErr))
		}
		return Instance{}, 0, journalErr
	}
	s.ovMu.Lock()
	s.overlay[in.Key] = overlayEntry{in, seq}
	n := len(s.overlay)
	s.ovMu.Unlock()
	if n >= overlayKick {
		select {
		case s.applyKick <- struct{}{}:
		default:
		}
	}
	s.used.Add(in.Size)
	s.count.Add(1)
	s.counters.stored.Add(1)
	w.finish()
	return in, Stored, nil
}

// overlayKick is how many journalled entries make the applier run before
// its interval; applyInterval the interval.
const (
	overlayKick   = 256
	applyInterval = 100 * time.Millisecond
)

// applier moves journalled entries into index.db until Close.
func (s *Spool) applier() {
	defer close(s.applyDone)
	t := time.NewTicker(applyInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopApply:
			return
		case <-t.C:
		case <-s.applyKick:
		}
		if err := s.flushOverlay(context.Background(), false); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Warn("journalled index entries could not be applied yet; retrying", "err", err)
		}
	}
}

// flushOverlay writes every journalled entry into index.db in one
// transaction, with the last sequence number applied, and takes them off
// the overlay; then restarts the journal when it has grown. frees says
// that it comes before a removal, or before Each or Group, with which
// the forwarder and the pruner find what to deliver and remove: on a full
// disk it may then use the reserve, as the removal itself may, else a
// disk filled while entries wait in the journal would stop every removal.
func (s *Spool) flushOverlay(ctx context.Context, frees bool) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := s.applyLocked(ctx, frees, false); err != nil {
		return err
	}
	if !s.journal.needsRestart() {
		return nil
	}
	// New appends wait while the Commits under way end (each with its
	// fdatasyncs); their entries are then applied, so every record is,
	// and the journal starts again. A Commit slow to end (a stalled disk)
	// leaves the restart to a later apply rather than holding every
	// store for it.
	drained := s.journal.hold()
	defer s.journal.release()
	select {
	case <-drained:
	case <-time.After(journalDrainWait):
		return nil
	case <-ctx.Done():
		return nil
	}
	if err := s.applyLocked(ctx, frees, true); err != nil {
		return err
	}
	if err := s.journal.restart(s.applied); err != nil {
		s.log.Warn("the index journal could not be restarted; it goes on growing", "err", err)
	}
	return nil
}

// journalDrainWait bounds how long a journal restart holds new appends.
const journalDrainWait = time.Second

// applyLocked is flushOverlay's apply, under applyMu. With force, the
// applied mark is written even when the overlay is empty (the last
// records' Commits failed), so that the journal can start again.
func (s *Spool) applyLocked(ctx context.Context, frees, force bool) error {
	// How far the journal is applied once this batch is in index.db, read
	// before the overlay is taken: read after, a Commit that put its entry
	// in the overlay just after it was taken, and then finished, would be
	// counted as applied without being in the batch, and a crash before the
	// next apply would lose that acknowledged instance (its record not
	// replayed, its file removed as one no entry names).
	bound := s.journal.appliedUpTo()
	s.ovMu.Lock()
	batch := make([]overlayEntry, 0, len(s.overlay))
	for _, e := range s.overlay {
		batch = append(batch, e)
	}
	s.ovMu.Unlock()
	if spoolFlushHook != nil {
		spoolFlushHook()
	}
	if len(batch) == 0 && (!force || bound <= s.applied) {
		return nil
	}
	upTo := max(s.applied, bound)
	do := s.c.do
	if frees {
		do = s.c.doFreeing
	}
	err := do(ctx, func(tx *bolt.Tx) error {
		for _, e := range batch {
			if err := putEntry(tx, e.in); err != nil {
				return err
			}
		}
		return setApplied(tx, upTo)
	})
	if err != nil {
		return err
	}
	s.applied = upTo
	s.ovMu.Lock()
	for _, e := range batch {
		if cur, ok := s.overlay[e.in.Key]; ok && cur.seq == e.seq {
			delete(s.overlay, e.in.Key)
		}
	}
	s.ovMu.Unlock()
	return nil
}

// spoolFlushHook, when set (by tests), runs in flushOverlay right after it
// has taken the overlay's entries.
var spoolFlushHook func()

// putEntry writes a new entry and its group membership.
func putEntry(tx *bolt.Tx, in Instance) error {
	v, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if in.Group != "" {
		g, err := tx.Bucket(groupsBucket).CreateBucketIfNotExists([]byte(in.Group))
		if err != nil {
			return err
		}
		if err := g.Put([]byte(in.Key), nil); err != nil {
			return err
		}
	}
	return tx.Bucket(instancesBucket).Put([]byte(in.Key), v)
}

var journalAppliedKey = []byte("journal_applied")

func setApplied(tx *bolt.Tx, seq uint64) error {
	b, err := tx.CreateBucketIfNotExists(spoolMetaBucket)
	if err != nil {
		return err
	}
	return b.Put(journalAppliedKey, binary.BigEndian.AppendUint64(nil, seq))
}

func getApplied(tx *bolt.Tx) uint64 {
	if b := tx.Bucket(spoolMetaBucket); b != nil {
		if v := b.Get(journalAppliedKey); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
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

// SyncDir flushes a folder's entries (names made, renamed or removed) to
// disk.
func SyncDir(dir string) error { return syncDir(dir) }

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
	s.ovMu.Lock()
	e, ok := s.overlay[key]
	s.ovMu.Unlock()
	if ok {
		return e.in, nil
	}
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
	if err := s.flushOverlay(context.Background(), true); err != nil {
		return nil, err
	}
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
	if err := s.flushOverlay(context.Background(), true); err != nil {
		return err
	}
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
	if err := s.flushOverlay(ctx, true); err != nil {
		return err
	}
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
	s.removeFile(in.File, "could not remove a spooled file; it will be removed at the next open")
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
	if s.stopApply != nil {
		close(s.stopApply)
		<-s.applyDone
		// What is still journalled goes into index.db now; were this to
		// fail, the next open replays it.
		if err := s.flushOverlay(context.Background(), false); err != nil {
			s.log.Warn("journalled index entries are left for the next open", "err", err)
		}
	}
	s.c.close()
	return errors.Join(s.db.Close(), s.journal.close())
}

// Unfinished counts the writers of stores in progress (or left neither
// committed nor aborted).
func (s *Spool) Unfinished() (int, error) { return int(s.writing.Load()), nil }
