package buffer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The journal is the outbox's write-ahead log: Append writes its items here
// with a single fdatasync per group of concurrent calls, and a checkpoint
// later moves them into bbolt (whose own commit costs two fdatasyncs and more
// page writes). The file is zero-filled when created and then overwritten in
// place, so that fdatasync has only data to flush and no file size to
// journal.
//
// File: a header page (magic line; at epochOffset the current epoch), then
// records from journalStart on, each starting on a page boundary:
//
//	length uint32 (of lsn and body) | sum uint32 | lsn uint64 | body
//	body: count uint32, then count times: id uint64, length uint32, encoded item
//
// sum is a CRC-32C of lsn and body, chained: it continues from the previous
// record's sum, and the first record of an epoch continues from a seed made
// of the epoch. Records carry consecutive LSNs. Reading starts at
// journalStart and stops at the first record that is torn, out of sequence,
// or not chained to the one before it. The chain is what makes a stale
// record harmless: one left from an earlier epoch (before a wrap or a
// restart), or one written after a record that never reached the disk, does
// not continue the chain and is never replayed.
//
// A new epoch starts (its number written into the header and fdatasynced)
// when the journal is created, after a replay at open has moved everything
// into bbolt, and at each wrap after the checkpoint. bbolt stores the LSN up
// to which the journal has been applied, in the same transaction as the
// items, so a replay never applies a record twice.

// journalMagic is the first line of the file: its format marker.
var journalMagic = OutboxJournalFormat.String() + "\n"

const (
	journalStart   = 4096
	epochOffset    = 32
	journalRecHead = 16
)

// journalSize is the largest size a new journal is zero-filled to, and its
// size for an outbox without a quota (a variable for tests).
var journalSize int64 = 32 << 20

// minJournalSize is the smallest size a journal is made with, from a small
// quota.
const minJournalSize = 4 << 20

// journalSizeFor sizes a new journal from the outbox's quota: a sixty-fourth
// of it, between 4 and 32 MiB. The journal only holds what arrives between
// two checkpoints (about 50 ms apart); a smaller one makes appends wait for
// a checkpoint at its wraps under a heavy load, never loses anything, and
// grows for a record larger than itself.
func journalSizeFor(quota int64) int64 {
	if quota <= 0 {
		return journalSize
	}
	return min(max(quota/64, min(minJournalSize, journalSize)), journalSize)
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type journalItem struct {
	id    uint64
	value []byte
}

type journalRecord struct {
	lsn   uint64
	items []journalItem
}

// jop is one Append call waiting in the journal's queue: its items, framed
// by the caller as in a record body (see appendFrame), and the slice that
// the journal fills with their IDs as it writes them.
type jop struct {
	frames []byte
	ids    []uint64
	done   chan error
}

// jops are reused: an Append would otherwise allocate one and its channel.
var jopPool = sync.Pool{New: func() any { return &jop{done: make(chan error, 1)} }}

// journalFrameHead is the id and length before each item in a record body.
const journalFrameHead = 12

// appendFrame appends it to b framed as in a record body, with the id left
// zero for the journal to fill in. Appenders frame their own items, so that
// the journal's loop, which every call waits for, only copies them.
func appendFrame(b []byte, it *Item) []byte {
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(it.encodedLen()))
	return it.appendTo(b)
}

type journal struct {
	path string
	f    *os.File
	size int64
	pos  int64
	lsn  uint64 // last LSN written
	next uint64 // next item id
	end  int64  // offset after the records read at open
	// epoch and sum chain the records: see the file comment.
	epoch   uint64
	sum     uint32
	lastSum uint32 // sum of the last record read at open

	ops     chan *jop
	stop    chan struct{}
	stopped chan struct{}
	closing sync.Once
	broken  atomic.Pointer[error] // set by a failed fdatasync

	// beforeWrap must move every record written so far into bbolt; the
	// journal calls it before it writes over them.
	beforeWrap func() error
	// committed hands the items of a durable record to the outbox.
	committed func(journalRecord)
	// fdatasync flushes the file after each record (a field so that tests
	// can watch and slow the flush).
	fdatasync func(*os.File) error

	// want is the size of the file when the journal makes it; lazy, that
	// it is made at the first record rather than at open, when onCreate
	// is called (loop only).
	want     int64
	lazy     bool
	onCreate func()

	// lastSync and expect tell gather how long to wait for callers, and how
	// many (loop only).
	lastSync time.Duration
	expect   int

	syncs atomic.Uint64
	calls atomic.Uint64
}

// openJournal opens or creates (of size bytes; lazy: at the first record)
// the journal file and returns the records after applied. The caller
// applies them and then calls restart (or, when it cannot apply them,
// keepTail) before the journal takes appends.
func openJournal(path string, applied uint64, size int64, lazy bool) (*journal, []journalRecord, error) {
	j := &journal{path: path, ops: make(chan *jop, maxOpsPerCommit), stop: make(chan struct{}), stopped: make(chan struct{}), fdatasync: fdatasyncFile, want: size, lazy: lazy}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist) && lazy:
		j.pos, j.lsn, j.end = journalStart, applied, journalStart
		return j, nil, nil
	case errors.Is(err, os.ErrNotExist):
		if f, err = createJournal(path, size); err != nil {
			return nil, nil, err
		}
		j.f, j.size, j.pos, j.lsn, j.end = f, size, journalStart, applied, journalStart
		return j, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	head := make([]byte, epochOffset+8)
	if _, err := f.ReadAt(head, 0); err != nil || string(head[:len(journalMagic)]) != journalMagic || info.Size() < journalStart {
		f.Close()
		if m, _ := JournalMarker(path); m != "" {
			if err := OutboxJournalFormat.Check(path, m); err != nil {
				return nil, nil, err
			}
		}
		return nil, nil, fmt.Errorf("%s is not a wardgate outbox journal; it was left untouched: move it aside (with outbox.db) to start an empty outbox", path)
	}
	j.f, j.size = f, info.Size()
	j.epoch = binary.BigEndian.Uint64(head[epochOffset:])
	recs, last, end, lastSum, err := readJournal(io.NewSectionReader(f, 0, j.size), applied, j.epoch)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	j.pos, j.lsn, j.end, j.lastSum = journalStart, max(applied, last), end, lastSum
	return j, recs, nil
}

// restart begins a new epoch at the start of the file: every record before
// it must be in bbolt. A journal not made yet stays so.
func (j *journal) restart() error {
	if j.f == nil {
		return nil
	}
	var b [8]byte
	var epoch uint64
	for epoch == 0 || epoch == j.epoch {
		rand.Read(b[:])
		epoch = binary.BigEndian.Uint64(b[:])
	}
	if _, err := j.f.WriteAt(b[:], epochOffset); err != nil {
		return diskFull(err)
	}
	if err := fdatasyncFile(j.f); err != nil {
		return diskFull(err)
	}
	j.epoch, j.sum, j.pos = epoch, epochSeed(epoch), journalStart
	return nil
}

// keepTail makes the next records follow, and chain to, the records read at
// open, which must stay readable because they are not in bbolt yet.
func (j *journal) keepTail() {
	j.pos, j.sum = j.end, j.lastSum
	if j.end == journalStart {
		j.sum = epochSeed(j.epoch)
	}
}

// fdatasyncFile fdatasyncs f through its reference-counted descriptor: a
// Close meanwhile cannot make it flush another file that reused the
// number.
func fdatasyncFile(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}

func epochSeed(epoch uint64) uint32 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], epoch)
	return crc32.Checksum(b[:], crcTable)
}

// alignPage rounds a journal offset up to the next page: each record starts
// on a page of its own, so that writing a record never rewrites a page that
// holds an earlier, acknowledged one (a write torn by a power loss could
// damage it) and never waits for that page's writeback (stable pages).
func alignPage(off int64) int64 { return (off + 4095) &^ 4095 }

// shrink cuts a journal larger than it would be made now (the quota was
// lowered, or it was made by a release that did not size journals) to that
// size. Only right after restart: every record is in bbolt.
func (j *journal) shrink() error {
	if j.f == nil || j.size <= j.want || j.want < journalStart {
		return nil
	}
	if err := j.f.Truncate(j.want); err != nil {
		return err
	}
	if err := fdatasyncFile(j.f); err != nil {
		return err
	}
	j.size = j.want
	return nil
}

// create makes a lazy journal's file at its first record.
func (j *journal) create() error {
	f, err := createJournal(j.path, j.want)
	if err != nil {
		return err
	}
	j.f, j.size = f, j.want
	if err := j.restart(); err != nil {
		return err
	}
	if j.onCreate != nil {
		j.onCreate()
	}
	return nil
}

func createJournal(path string, size int64) (*os.File, error) {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, diskFull(err)
	}
	fail := func(err error) (*os.File, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("create %s: %w", path, diskFull(err))
	}
	zeros := make([]byte, 1<<20)
	copy(zeros, journalMagic)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros, off); err != nil {
			return fail(err)
		}
		if off == 0 {
			clear(zeros[:len(journalMagic)])
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(dirOf(path)); err != nil {
		return fail(err)
	}
	return f, nil
}

// readJournal returns the records after applied, the last LSN read, the
// offset after the last record and its sum.
func readJournal(r *io.SectionReader, applied, epoch uint64) ([]journalRecord, uint64, int64, uint32, error) {
	var recs []journalRecord
	var last uint64
	off := int64(journalStart)
	prev := epochSeed(epoch)
	head := make([]byte, journalRecHead)
	for {
		if _, err := r.ReadAt(head, off); err != nil {
			break
		}
		n := int64(binary.BigEndian.Uint32(head))
		sum := binary.BigEndian.Uint32(head[4:])
		if n < 12 || off+8+n > r.Size() {
			break
		}
		rec := make([]byte, n)
		if _, err := r.ReadAt(rec, off+8); err != nil {
			break
		}
		if crc32.Update(prev, crcTable, rec) != sum {
			break // torn, or not chained to the record before
		}
		lsn := binary.BigEndian.Uint64(rec)
		if last != 0 && lsn != last+1 {
			break
		}
		last, prev = lsn, sum
		off = alignPage(off + 8 + n)
		if lsn <= applied {
			continue
		}
		items, err := decodeJournalBody(rec[8:])
		if err != nil {
			return nil, 0, 0, 0, fmt.Errorf("record %d: %w", lsn, err)
		}
		recs = append(recs, journalRecord{lsn: lsn, items: items})
	}
	return recs, last, off, prev, nil
}

func decodeJournalBody(b []byte) ([]journalItem, error) {
	if len(b) < 4 {
		return nil, errCorruptItem
	}
	count := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	items := make([]journalItem, 0, min(count, 1<<16))
	for i := 0; i < count; i++ {
		if len(b) < 12 {
			return nil, errCorruptItem
		}
		id := binary.BigEndian.Uint64(b)
		n := int(binary.BigEndian.Uint32(b[8:]))
		if len(b) < 12+n {
			return nil, errCorruptItem
		}
		items = append(items, journalItem{id: id, value: b[12 : 12+n]})
		b = b[12+n:]
	}
	return items, nil
}

func (j *journal) start() { go j.loop() }

// append writes frames (items framed by appendFrame) as one part of the next
// group and fills ids with their IDs; it returns once the group is on disk.
// Like committer.do, ctx bounds only the wait for a place in the queue.
func (j *journal) append(ctx context.Context, frames []byte, ids []uint64) error {
	select {
	case <-j.stop:
		return ErrClosed
	default:
	}
	o := jopPool.Get().(*jop)
	o.frames, o.ids = frames, ids
	select {
	case j.ops <- o:
	default:
		select {
		case j.ops <- o:
		case <-ctx.Done():
			jopPool.Put(o)
			return ctx.Err()
		case <-j.stop:
			jopPool.Put(o)
			return ErrClosed
		}
	}
	var err error
	select {
	case err = <-o.done:
	case <-j.stopped:
		select {
		case err = <-o.done:
		default:
			return ErrClosed // o stays in the queue, never taken: not reused
		}
	}
	o.frames, o.ids = nil, nil
	jopPool.Put(o)
	return err
}

// The journal runs as one goroutine that takes the waiting calls as a group,
// writes their record, fdatasyncs and answers them, then takes the next
// group: one record and one fdatasync in flight at a time, so groups become
// durable, and are answered, in LSN order.
//
// A group is closed as late as is worth it. While an fdatasync runs, every
// call that arrives waits for the next group; when it returns, the callers
// just answered usually come back at once with their next Append, and gather
// waits for them so that they join the group being formed instead of the one
// after it. Writing the next record while the previous one was being
// flushed, as this journal once did, split steady appenders into two cohorts
// that took turns, so each fdatasync carried half of them.
func (j *journal) loop() {
	defer close(j.stopped)
	batch := make([]*jop, 0, 64)
	var buf bytes.Buffer
	for {
		select {
		case o := <-j.ops:
			batch = j.gather(append(batch[:0], o))
			j.commit(batch, &buf)
		case <-j.stop:
			// Write what was queued before the stop, then refuse.
			for {
				batch = j.drain(batch[:0])
				if len(batch) == 0 {
					return
				}
				j.commit(batch, &buf)
			}
		}
	}
}

// maxGatherWait bounds the wait in gather: on a slow disk a quarter of an
// fdatasync could be milliseconds of yielding, while a caller that is coming
// back needs microseconds.
const maxGatherWait = 100 * time.Microsecond

// gather adds the calls waiting in the queue to batch, yielding (as
// committer.loop does) to let callers come: again and again while calls keep
// coming or fewer are there than last time's callers (j.expect), but no
// longer than a quarter of the last fdatasync or maxGatherWait. A caller that
// misses a group waits a whole fdatasync more, so a short wait for it pays.
// A journal with one caller at a time pays one yield; the first call after
// a burst may wait the whole limit for callers that do not come.
func (j *journal) gather(batch []*jop) []*jop {
	start := time.Now()
	limit := min(j.lastSync/4, maxGatherWait)
	for yields := 0; ; yields++ {
		n := len(batch)
		batch = j.drain(batch)
		switch {
		case len(batch) == maxOpsPerCommit:
			return batch
		case yields == 0:
		case time.Since(start) >= limit:
			return batch
		case len(batch) == n && len(batch) >= j.expect:
			return batch
		}
		runtime.Gosched()
	}
}

// drain adds the calls waiting in the queue to batch, up to maxOpsPerCommit.
func (j *journal) drain(batch []*jop) []*jop {
	for len(batch) < maxOpsPerCommit {
		select {
		case o := <-j.ops:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// commit writes one group's record, fdatasyncs, hands the record to the
// outbox and answers the group's calls.
func (j *journal) commit(batch []*jop, buf *bytes.Buffer) {
	rec, err := j.writeRecord(batch, buf)
	if err == nil {
		start := time.Now()
		e := j.fdatasync(j.f)
		j.lastSync = time.Since(start)
		if e != nil {
			// After a failed flush the page cache cannot be trusted
			// (fsyncgate): refuse everything until a restart replays what
			// is really on disk.
			e = fmt.Errorf("outbox journal fdatasync failed; restart wardgate: %w", diskFull(e))
			j.broken.CompareAndSwap(nil, &e)
			err = e
		} else {
			j.syncs.Add(1)
			j.calls.Add(uint64(len(batch)))
			j.committed(rec)
		}
	}
	// These callers and those that queued meanwhile are the ones the next
	// group can expect.
	j.expect = len(batch) + len(j.ops)
	for _, o := range batch {
		o.done <- err
	}
}

// writeRecord writes one group's record to the page cache. Every record
// before it is durable by then (or the journal is broken), so a wrap may
// write over them once beforeWrap has them in bbolt.
func (j *journal) writeRecord(batch []*jop, buf *bytes.Buffer) (journalRecord, error) {
	if err := j.broken.Load(); err != nil {
		return journalRecord{}, *err
	}
	if j.f == nil {
		if err := j.create(); err != nil {
			return journalRecord{}, fmt.Errorf("outbox journal: %w", err)
		}
	}
	count := 0
	for _, o := range batch {
		count += len(o.ids)
	}
	lsn := j.lsn + 1
	buf.Reset()
	var scratch [16]byte
	buf.Write(scratch[:8]) // length and checksum, filled in below
	binary.BigEndian.PutUint64(scratch[:], lsn)
	buf.Write(scratch[:8])
	binary.BigEndian.PutUint32(scratch[:], uint32(count))
	buf.Write(scratch[:4])
	rec := journalRecord{lsn: lsn, items: make([]journalItem, 0, count)}
	id := j.next
	for _, o := range batch {
		start := buf.Len()
		buf.Write(o.frames)
		b := buf.Bytes()[start:]
		for i, off := 0, 0; i < len(o.ids); i++ {
			binary.BigEndian.PutUint64(b[off:], id)
			end := off + journalFrameHead + int(binary.BigEndian.Uint32(b[off+8:]))
			o.ids[i] = id
			rec.items = append(rec.items, journalItem{id: id, value: o.frames[off+journalFrameHead : end]})
			off = end
			id++
		}
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b, uint32(len(b)-8))
	sum := crc32.Update(j.sum, crcTable, b[8:])
	binary.BigEndian.PutUint32(b[4:], sum)

	if j.pos+int64(len(b)) > j.size {
		// Everything before pos must be in bbolt before it is overwritten.
		if err := j.beforeWrap(); err != nil {
			return journalRecord{}, err
		}
		if need := journalStart + int64(len(b)); need > j.size {
			if err := j.grow(need); err != nil {
				return journalRecord{}, err
			}
		}
		if err := j.restart(); err != nil {
			return journalRecord{}, err
		}
		// The new epoch changes the chain: sum the record again.
		sum = crc32.Update(j.sum, crcTable, b[8:])
		binary.BigEndian.PutUint32(b[4:], sum)
	}
	if _, err := j.f.WriteAt(b, j.pos); err != nil {
		// Nothing was flushed: the next record is written at the same place
		// and the calls of this one are refused.
		return journalRecord{}, fmt.Errorf("outbox journal write: %w", diskFull(err))
	}
	j.pos = alignPage(j.pos + int64(len(b)))
	j.sum = sum
	j.lsn = lsn
	j.next = id
	return rec, nil
}

// grow zero-fills the journal up to at least need bytes, rounded up to MiB.
func (j *journal) grow(need int64) error {
	size := (need + 1<<20 - 1) &^ (1<<20 - 1)
	zeros := make([]byte, 1<<20)
	for off := j.size; off < size; off += int64(len(zeros)) {
		if _, err := j.f.WriteAt(zeros, off); err != nil {
			return diskFull(err)
		}
	}
	if err := j.f.Sync(); err != nil {
		return diskFull(err)
	}
	j.size = size
	return nil
}

func (j *journal) close() error {
	j.closing.Do(func() { close(j.stop) })
	<-j.stopped
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
