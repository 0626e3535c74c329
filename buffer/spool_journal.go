package buffer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
)

// The spool's index journal (spool/index.journal) makes a new instance's
// index entry durable with one fdatasync of a file that does not grow,
// instead of the two fdatasyncs of a bbolt commit: on a modality's single
// association that commit, not the instance's own bytes, was the longest
// wait before Success. An applier moves journalled entries into index.db
// within about 100 ms, in one bbolt transaction that also records the last
// sequence number applied; OpenSpool replays what it had not applied.
//
// A record is [length u32][crc32c u32][seq u64][entry JSON], little
// endian; the CRC covers seq and entry. Records follow each other from
// the start of the file; reading stops at the first that is torn, fails
// its CRC or does not continue the sequence (what an earlier round of
// records left behind after the journal was restarted at 0). The file is
// kept at least journalChunk long, filled with zeros ahead of the records,
// so an append overwrites written blocks and its fdatasync flushes data
// only.

// The journal grows by journalChunk, written with zeros; once it is past
// journalRestartAt, the applier makes new appends wait for the Commits
// under way to end (their fdatasyncs, a millisecond or so), applies their
// entries and starts the journal again at 0: under a steady stream some
// Commit is nearly always under way, and waiting for a moment when none
// is let the journal grow for as long as the stream lasted. journalMaxRecord bounds what a length
// field may say: an index entry is a few KiB.
var (
	journalChunk     int64 = 1 << 20
	journalRestartAt int64 = 512 << 10
)

const journalMaxRecord = 1 << 20

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// spoolJournal appends index entries; concurrent appenders share an
// fdatasync (the first to sync takes every record written before it).
type spoolJournal struct {
	f *os.File

	mu   sync.Mutex // off, size, seq, open, the file's contents
	off  int64      // end of the records
	size int64      // file size (zeros beyond off)
	seq  uint64     // last sequence number written
	// open are the records written whose Commit has not finished (made
	// its entry visible, or failed): the applier must not record as
	// applied a sequence number past one of them.
	open map[uint64]bool
	// broken is set by a failed fdatasync: the records it should have made
	// durable may never reach the disk (the kernel marks their pages clean
	// all the same: fsyncgate), and the journal is read at open only up to
	// the first record missing, so no record after them may be
	// acknowledged, whatever a later fdatasync says. Until a restart of
	// wardgate replays what is really on disk, every append is refused.
	broken error
	// held, while a restart waits for the Commits under way to end, makes
	// appends wait (it is closed when the restart is over); drained is
	// closed once no record's Commit is unfinished.
	held, drained chan struct{}

	syncMu sync.Mutex // one fdatasync at a time
	synced uint64     // every record up to this seq is durable (under syncMu)

	fdatasync func(*os.File) error // fdatasyncFile; tests make it fail
}

// spoolJournalRecord is one entry read back at open.
type spoolJournalRecord struct {
	Seq   uint64
	Entry Instance
}

// openSpoolJournal opens (or creates) the journal and returns the records
// after applied, in order. The caller applies them, then calls restart.
// (The journal's own sequence continues from the larger of its last record
// and applied.)
func openSpoolJournal(path string, applied uint64) (*spoolJournal, []spoolJournalRecord, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	j := &spoolJournal{f: f, size: info.Size(), open: map[uint64]bool{}, fdatasync: fdatasyncFile}
	var recs []spoolJournalRecord
	r := io.NewSectionReader(f, 0, info.Size())
	var off int64
	var last uint64
	hdr := make([]byte, 8)
	for {
		if _, err := r.ReadAt(hdr, off); err != nil {
			break
		}
		n := binary.LittleEndian.Uint32(hdr)
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if n < 8 || n > journalMaxRecord || off+8+int64(n) > info.Size() {
			break
		}
		body := make([]byte, n)
		if _, err := r.ReadAt(body, off+8); err != nil || crc32.Checksum(body, journalCRC) != sum {
			break
		}
		seq := binary.LittleEndian.Uint64(body)
		if last != 0 && seq != last+1 {
			break // a record of an earlier round
		}
		var in Instance
		if err := json.Unmarshal(body[8:], &in); err != nil {
			break
		}
		last = seq
		off += 8 + int64(n)
		if seq > applied {
			recs = append(recs, spoolJournalRecord{seq, in})
		}
	}
	j.seq = max(last, applied)
	j.synced = j.seq
	return j, recs, nil
}

// restart makes the journal start again at 0 when everything written is
// applied (through applied): the old records stay behind the new ones until
// overwritten, and reading stops where the sequence breaks. The first new
// record's number continues from seq, so an old record cannot pass for a
// new one. It does nothing when a record is not applied yet.
func (j *spoolJournal) restart(applied uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.seq != applied {
		return nil
	}
	j.off = 0
	// The start is zeroed: until a new record is written there, reading
	// finds nothing (an old first record would pass the check otherwise).
	if _, err := j.f.WriteAt(make([]byte, 8), 0); err != nil {
		return err
	}
	if j.size < journalChunk {
		// Best effort: on a full disk the gateway must still open (to
		// deliver, and so free room); the next append grows the file or
		// is refused with ErrFull.
		_ = j.growLocked(journalChunk - j.size)
	}
	return j.fdatasync(j.f)
}

// wipe writes zeros over the whole file.
func (j *spoolJournal) wipe() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	zeros := make([]byte, 256<<10)
	for off := int64(0); off < j.size; off += int64(len(zeros)) {
		if _, err := j.f.WriteAt(zeros[:min(int64(len(zeros)), j.size-off)], off); err != nil {
			return err
		}
	}
	return nil
}

// needsRestart reports whether the journal has grown past journalRestartAt.
func (j *spoolJournal) needsRestart() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.off > journalRestartAt
}

// growLocked writes n zero bytes at the end of the file.
func (j *spoolJournal) growLocked(n int64) error {
	zeros := make([]byte, 256<<10)
	for n > 0 {
		m := min(n, int64(len(zeros)))
		if _, err := j.f.WriteAt(zeros[:m], j.size); err != nil {
			return err
		}
		j.size += m
		n -= m
	}
	return nil
}

// append writes in's entry and returns its sequence number; it is durable
// once sync(seq) returns nil.
func (j *spoolJournal) append(in Instance) (uint64, error) {
	v, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	if len(v)+8 > journalMaxRecord {
		return 0, fmt.Errorf("spool journal: index entry of %d bytes", len(v))
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.held != nil {
		h := j.held
		j.mu.Unlock()
		<-h
		j.mu.Lock()
	}
	if j.broken != nil {
		return 0, j.broken
	}
	seq := j.seq + 1
	rec := make([]byte, 16, 16+len(v))
	binary.LittleEndian.PutUint64(rec[8:], seq)
	rec = append(rec, v...)
	binary.LittleEndian.PutUint32(rec, uint32(len(rec)-8))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], journalCRC))
	if need := j.off + int64(len(rec)) + 8; need > j.size {
		if err := j.growLocked(max(journalChunk, need-j.size)); err != nil {
			return 0, diskFull(err)
		}
	}
	if _, err := j.f.WriteAt(rec, j.off); err != nil {
		return 0, diskFull(err)
	}
	j.off += int64(len(rec))
	j.seq = seq
	j.open[seq] = true
	return seq, nil
}

// done says that the Commit of record seq has finished.
func (j *spoolJournal) done(seq uint64) {
	j.mu.Lock()
	delete(j.open, seq)
	if j.drained != nil && len(j.open) == 0 {
		close(j.drained)
		j.drained = nil
	}
	j.mu.Unlock()
}

// hold makes appends wait until release, and returns a channel closed
// once every record written has its Commit finished.
func (j *spoolJournal) hold() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.held = make(chan struct{})
	d := make(chan struct{})
	if len(j.open) == 0 {
		close(d)
	} else {
		j.drained = d
	}
	return d
}

// release lets appends go on after hold.
func (j *spoolJournal) release() {
	j.mu.Lock()
	defer j.mu.Unlock()
	close(j.held)
	j.held, j.drained = nil, nil
}

// appliedUpTo is how far the journal may be recorded as applied once the
// overlay, taken after this call, is in index.db: up to the record before
// the first whose Commit has not finished. A Commit puts its entry in the
// overlay before it finishes, so every record up to there is in the
// overlay taken next, or applied before, or failed (never acknowledged).
func (j *spoolJournal) appliedUpTo() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	top := j.seq
	for seq := range j.open {
		if seq <= top {
			top = seq - 1
		}
	}
	return top
}

// sync returns once record seq is durable; one fdatasync serves every
// record written before it started.
func (j *spoolJournal) sync(seq uint64) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= seq {
		return nil
	}
	j.mu.Lock()
	upTo, broken := j.seq, j.broken
	j.mu.Unlock()
	if broken != nil {
		return broken
	}
	if err := j.fdatasync(j.f); err != nil {
		err = fmt.Errorf("spool journal: fdatasync failed; restart wardgate: %w", diskFull(err))
		j.mu.Lock()
		j.broken = err
		j.mu.Unlock()
		return err
	}
	j.synced = upTo
	return nil
}

func (j *spoolJournal) close() error {
	if j == nil || j.f == nil {
		return nil
	}
	return errors.Join(j.f.Close())
}
