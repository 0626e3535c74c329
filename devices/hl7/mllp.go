package hl7

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// MLLP release 2 framing bytes.
const (
	StartBlock = 0x0B // VT
	EndBlock   = 0x1C // FS, followed by CR (0x0D)
)

const frameCR = 0x0D

// ErrTruncatedFrame: the stream ended inside a frame.
var ErrTruncatedFrame = errors.New("mllp: stream ended inside a frame")

// FrameTooLargeError: a frame grew past the reader's bound. The rest of the
// frame was not read: the caller closes the connection.
type FrameTooLargeError struct{ Max int }

func (e *FrameTooLargeError) Error() string {
	return fmt.Sprintf("mllp: frame larger than the limit of %d bytes", e.Max)
}

// ReaderStats counts what a Reader skipped. Nothing it drops goes
// uncounted.
type ReaderStats struct {
	// Frames is the number of messages returned.
	Frames int64
	// GarbageBytes are bytes outside any frame (before a start block, or
	// after an end block other than its CR); GarbageRuns the runs of them.
	GarbageBytes, GarbageRuns int64
	// Abandoned frames were cut off by a new start block before their end
	// block (the sender gave up and began again); their bytes are not in
	// GarbageBytes.
	Abandoned int64
	// MissingCR counts end blocks not followed by CR (taken all the same).
	MissingCR int64
}

// Reader reads MLLP frames from a stream, one message at a time.
type Reader struct {
	r     *bufio.Reader
	max   int
	buf   []byte
	stats ReaderStats
	// cr: an end block was read and the CR after it was not yet there.
	cr bool
}

// NewReader reads frames of at most max bytes of message (default
// DefaultMaxBytes when max <= 0) from r.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxBytes
	}
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Stats is what the reader has counted so far.
func (r *Reader) Stats() ReaderStats { return r.stats }

// ReadMessage returns the next message, without its framing bytes. The
// slice is valid until the next call. At the end of the stream between
// frames it returns io.EOF; inside a frame, ErrTruncatedFrame; for a frame
// larger than the bound, *FrameTooLargeError. After an error other than a
// deadline that the caller extends, the stream is not usable.
func (r *Reader) ReadMessage() ([]byte, error) {
	if err := r.skipToStart(); err != nil {
		return nil, err
	}
	r.buf = r.buf[:0]
	for {
		chunk, err := r.r.ReadSlice(EndBlock)
		if k := bytes.LastIndexByte(chunk, StartBlock); k >= 0 {
			// A new frame began before this one ended.
			r.stats.Abandoned++
			r.buf = r.buf[:0]
			chunk = chunk[k+1:]
		}
		if len(r.buf)+len(chunk) > r.max+1 { // +1: the end block
			return nil, &FrameTooLargeError{Max: r.max}
		}
		r.buf = append(r.buf, chunk...)
		switch {
		case err == nil:
			// The CR after the end block is taken now if it is here, and
			// otherwise before the next frame: waiting for it would hold
			// the acknowledgement of a sender that leaves it out.
			if r.r.Buffered() > 0 {
				r.takeCR()
			} else {
				r.cr = true
			}
			r.stats.Frames++
			return r.buf[:len(r.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, ErrTruncatedFrame
		default:
			return nil, err
		}
	}
}

// skipToStart discards bytes up to and including the next start block,
// counting them.
func (r *Reader) skipToStart() error {
	run := false
	for {
		if _, err := r.r.Peek(1); err != nil {
			if r.cr && errors.Is(err, io.EOF) {
				r.cr = false
				r.stats.MissingCR++
			}
			return err
		}
		if r.cr {
			r.takeCR()
			continue
		}
		b, _ := r.r.Peek(r.r.Buffered())
		if k := bytes.IndexByte(b, StartBlock); k >= 0 {
			if k > 0 {
				r.garbage(k, &run)
			}
			_, _ = r.r.Discard(k + 1)
			return nil
		}
		r.garbage(len(b), &run)
		_, _ = r.r.Discard(len(b))
	}
}

// takeCR reads the CR after an end block, which is buffered.
func (r *Reader) takeCR() {
	r.cr = false
	if b, _ := r.r.Peek(1); len(b) == 1 && b[0] == frameCR {
		_, _ = r.r.Discard(1)
		return
	}
	r.stats.MissingCR++
}

func (r *Reader) garbage(n int, run *bool) {
	r.stats.GarbageBytes += int64(n)
	if !*run {
		r.stats.GarbageRuns++
		*run = true
	}
}

// AppendFrame appends msg framed for MLLP to dst.
func AppendFrame(dst, msg []byte) []byte {
	dst = append(dst, StartBlock)
	dst = append(dst, msg...)
	return append(dst, EndBlock, frameCR)
}

// WriteFrame writes msg as one MLLP frame in a single Write.
func WriteFrame(w io.Writer, msg []byte) error {
	_, err := w.Write(AppendFrame(make([]byte, 0, len(msg)+3), msg))
	return err
}
