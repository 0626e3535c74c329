package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Item is one unit of work in the Outbox: typically one FHIR resource.
type Item struct {
	// ID is assigned by Append; IDs increase in append order.
	ID uint64
	// Key orders delivery: items with the same non-empty Key are leased in
	// append order, and none is leased while an earlier one with that Key is
	// leased or waiting for a retry. One device's readings share a Key.
	Key string
	// Kind tells the consumer what Payload holds ("observation", ...).
	Kind string
	// Payload is the item itself, opaque to the outbox.
	Payload []byte

	// Attempts counts the deliveries started (leases taken).
	Attempts int
	// NotBefore is the earliest time of the next lease (zero: now).
	NotBefore time.Time
	// Enqueued is when Append committed the item.
	Enqueued time.Time
	// LastError is the reason given by the last Nack.
	LastError string

	leaseRun uint64 // run that last leased it (0: none), on disk only
}

// DeadLetter is an item that delivery gave up on, with the reason (for a FHIR
// write, the server's OperationOutcome).
type DeadLetter struct {
	Item
	Reason string
	At     time.Time
}

const (
	itemVersion   = 1
	itemHeaderLen = 1 + 4 + 8 + 8 + 8 + 2 + 2 + 2
	maxKeyLen     = 1024
	maxKindLen    = 255
	maxErrLen     = 4096
)

var errCorruptItem = errors.New("corrupt outbox item")

func (it *Item) encodedLen() int {
	return itemHeaderLen + len(it.Key) + len(it.Kind) + len(it.LastError) + len(it.Payload)
}

func (it *Item) encode() []byte {
	return it.appendTo(make([]byte, 0, it.encodedLen()))
}

// appendTo appends the encoded item to b.
func (it *Item) appendTo(b []byte) []byte {
	b = append(b, itemVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(it.Attempts))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(it.NotBefore)))
	b = binary.BigEndian.AppendUint64(b, uint64(unixNano(it.Enqueued)))
	b = binary.BigEndian.AppendUint64(b, it.leaseRun)
	b = binary.BigEndian.AppendUint16(b, uint16(len(it.Key)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(it.Kind)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(it.LastError)))
	b = append(b, it.Key...)
	b = append(b, it.Kind...)
	b = append(b, it.LastError...)
	return append(b, it.Payload...)
}

// decodeItem decodes v (a bbolt value, valid only inside its transaction);
// with payload false the payload is left out, for scans. Strings and the
// payload are copied.
func decodeItem(id uint64, v []byte, payload bool) (Item, error) {
	if len(v) < itemHeaderLen || v[0] != itemVersion {
		return Item{}, fmt.Errorf("%w %d", errCorruptItem, id)
	}
	it := Item{
		ID:        id,
		Attempts:  int(binary.BigEndian.Uint32(v[1:])),
		NotBefore: fromUnixNano(int64(binary.BigEndian.Uint64(v[5:]))),
		Enqueued:  fromUnixNano(int64(binary.BigEndian.Uint64(v[13:]))),
		leaseRun:  binary.BigEndian.Uint64(v[21:]),
	}
	kl := int(binary.BigEndian.Uint16(v[29:]))
	tl := int(binary.BigEndian.Uint16(v[31:]))
	el := int(binary.BigEndian.Uint16(v[33:]))
	rest := v[itemHeaderLen:]
	if len(rest) < kl+tl+el {
		return Item{}, fmt.Errorf("%w %d", errCorruptItem, id)
	}
	it.Key = string(rest[:kl])
	it.Kind = string(rest[kl : kl+tl])
	it.LastError = string(rest[kl+tl : kl+tl+el])
	if payload {
		it.Payload = append([]byte(nil), rest[kl+tl+el:]...)
	}
	return it, nil
}

func (d *DeadLetter) encode() []byte {
	reason := truncate(d.Reason, 64<<10)
	item := d.Item.encode()
	b := make([]byte, 13, 13+len(reason)+len(item))
	b[0] = itemVersion
	binary.BigEndian.PutUint64(b[1:], uint64(unixNano(d.At)))
	binary.BigEndian.PutUint32(b[9:], uint32(len(reason)))
	b = append(b, reason...)
	return append(b, item...)
}

func decodeDead(id uint64, v []byte, payload bool) (DeadLetter, error) {
	if len(v) < 13 || v[0] != itemVersion {
		return DeadLetter{}, fmt.Errorf("%w (dead letter) %d", errCorruptItem, id)
	}
	at := fromUnixNano(int64(binary.BigEndian.Uint64(v[1:])))
	rl := int(binary.BigEndian.Uint32(v[9:]))
	if len(v) < 13+rl {
		return DeadLetter{}, fmt.Errorf("%w (dead letter) %d", errCorruptItem, id)
	}
	it, err := decodeItem(id, v[13+rl:], payload)
	if err != nil {
		return DeadLetter{}, err
	}
	return DeadLetter{Item: it, Reason: string(v[13 : 13+rl]), At: at}, nil
}

func idKey(id uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], id)
	return k[:]
}

func keyID(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// truncate cuts s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-len(" …(truncated)")] + " …(truncated)"
}
