package buffer

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrFull is matched (with errors.Is) by every error that means "no room":
// the store's byte quota would be exceeded, or the disk itself is full.
// Callers refuse the input upstream when they see it; nothing is evicted.
var ErrFull = errors.New("store is full")

// ErrClosed is returned by operations on a store after Close.
var ErrClosed = errors.New("store is closed")

// ErrLeaseLost is returned when a batch settles an item whose lease expired
// and was given to another batch, or that was removed meanwhile.
var ErrLeaseLost = errors.New("lease lost")

// ErrNotFound is returned for an item, dead letter or instance that is not there.
var ErrNotFound = errors.New("not found")

// fullError reports a quota or disk-full refusal; it matches ErrFull and,
// when the disk was full, the underlying syscall error too.
type fullError struct {
	msg string
	err error // the cause, if any (ENOSPC, EDQUOT)
}

func (e *fullError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", ErrFull, e.msg, e.err)
	}
	return fmt.Sprintf("%s: %s", ErrFull, e.msg)
}

func (e *fullError) Is(target error) bool { return target == ErrFull }
func (e *fullError) Unwrap() error        { return e.err }

// diskFull wraps err as a fullError when it says the disk (or a disk quota)
// is full, and returns it unchanged otherwise.
func diskFull(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &fullError{msg: "disk full", err: err}
	}
	return err
}
