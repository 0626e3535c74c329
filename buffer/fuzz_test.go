package buffer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"testing"
	"time"
)

// The journal and the item encodings are read back from disk, where a crash,
// a bad disk or a hand edit can leave anything: reading them must never panic
// and never invent a record.

func journalRecordBytes(prev uint32, lsn uint64, items ...journalItem) []byte {
	var body bytes.Buffer
	var b [12]byte
	binary.BigEndian.PutUint64(b[:], lsn)
	body.Write(b[:8])
	binary.BigEndian.PutUint32(b[:], uint32(len(items)))
	body.Write(b[:4])
	for _, it := range items {
		binary.BigEndian.PutUint64(b[:], it.id)
		binary.BigEndian.PutUint32(b[8:], uint32(len(it.value)))
		body.Write(b[:12])
		body.Write(it.value)
	}
	out := make([]byte, 8, 8+body.Len())
	binary.BigEndian.PutUint32(out, uint32(body.Len()))
	binary.BigEndian.PutUint32(out[4:], crc32.Update(prev, crcTable, body.Bytes()))
	return append(out, body.Bytes()...)
}

func FuzzReadJournal(f *testing.F) {
	valid := make([]byte, journalStart)
	copy(valid, journalMagic)
	binary.BigEndian.PutUint64(valid[epochOffset:], 42)
	valid = append(valid, journalRecordBytes(epochSeed(42), 1, journalItem{id: 1, value: (&Item{Key: "k", Payload: []byte("p")}).encode()})...)
	f.Add(valid, uint64(0))
	f.Add(valid, uint64(1))
	f.Add(valid[:len(valid)-3], uint64(0)) // torn
	f.Add(make([]byte, journalStart+100), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, applied uint64) {
		recs, last, end, _, err := readJournal(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), applied, 42)
		if err != nil {
			return
		}
		if end < journalStart && len(recs) > 0 {
			t.Fatalf("records before the journal start")
		}
		prev := uint64(0)
		for _, r := range recs {
			if r.lsn <= applied || (prev != 0 && r.lsn != prev+1) || r.lsn > last {
				t.Fatalf("record %d out of sequence (applied %d, prev %d, last %d)", r.lsn, applied, prev, last)
			}
			prev = r.lsn
		}
	})
}

func FuzzDecodeItem(f *testing.F) {
	it := Item{Key: "bed-12", Kind: "observation", Payload: []byte(`{"resourceType":"Observation"}`),
		Attempts: 3, NotBefore: time.Unix(1e9, 0), Enqueued: time.Unix(1e9, 5), LastError: "HTTP 503"}
	f.Add(it.encode())
	f.Add((&DeadLetter{Item: it, Reason: "HTTP 422", At: time.Unix(2e9, 0)}).encode())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, err := decodeItem(7, data, true); err == nil {
			again, err := decodeItem(7, got.encode(), true)
			if err != nil || again.Key != got.Key || !bytes.Equal(again.Payload, got.Payload) || again.Attempts != got.Attempts {
				t.Fatalf("item does not survive a round trip: %+v vs %+v (%v)", got, again, err)
			}
		}
		decodeDead(7, data, true)
	})
}

// A record that does not continue the chain is never replayed, even with the
// next LSN: it is stale (an earlier epoch, or written after a record that
// never reached the disk) and its IDs may since belong to other items.
func TestJournalReplaysOnlyAnUnbrokenChain(t *testing.T) {
	const epoch = 7
	item := func(id uint64) journalItem {
		return journalItem{id: id, value: (&Item{Payload: []byte(fmt.Sprint(id))}).encode()}
	}
	build := func(recs ...[]byte) []byte {
		b := make([]byte, journalStart)
		copy(b, journalMagic)
		binary.BigEndian.PutUint64(b[epochOffset:], epoch)
		for _, r := range recs {
			b = append(b, r...)
			b = append(b, make([]byte, alignPage(int64(len(b)))-int64(len(b)))...)
		}
		return b
	}
	sumOf := func(rec []byte) uint32 { return binary.BigEndian.Uint32(rec[4:]) }
	r1 := journalRecordBytes(epochSeed(epoch), 1, item(1))
	r2 := journalRecordBytes(sumOf(r1), 2, item(2))
	r3 := journalRecordBytes(sumOf(r2), 3, item(3))
	stale2 := journalRecordBytes(12345, 2, item(2))            // chained to a record that is not there
	otherEpoch := journalRecordBytes(epochSeed(8), 1, item(1)) // from another epoch
	for _, tc := range []struct {
		name string
		file []byte
		want int
	}{
		{"whole chain", build(r1, r2, r3), 3},
		{"broken link", build(r1, stale2, r3), 1},
		{"lost middle record", build(r1, make([]byte, 100), r3), 1},
		{"other epoch", build(otherEpoch, r2), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, _, _, _, err := readJournal(io.NewSectionReader(bytes.NewReader(tc.file), 0, int64(len(tc.file))), 0, epoch)
			if err != nil || len(recs) != tc.want {
				t.Fatalf("%d records (%v), want %d", len(recs), err, tc.want)
			}
		})
	}
}
