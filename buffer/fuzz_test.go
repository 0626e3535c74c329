package buffer

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"testing"
	"time"
)

// The journal and the item encodings are read back from disk, where a crash,
// a bad disk or a hand edit can leave anything: reading them must never panic
// and never invent a record.

func journalRecordBytes(lsn uint64, items ...journalItem) []byte {
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
	binary.BigEndian.PutUint32(out[4:], crc32.Checksum(body.Bytes(), crcTable))
	return append(out, body.Bytes()...)
}

func FuzzReadJournal(f *testing.F) {
	valid := make([]byte, journalStart)
	copy(valid, journalMagic)
	valid = append(valid, journalRecordBytes(1, journalItem{id: 1, value: (&Item{Key: "k", Payload: []byte("p")}).encode()})...)
	f.Add(valid, uint64(0))
	f.Add(valid, uint64(1))
	f.Add(valid[:len(valid)-3], uint64(0)) // torn
	f.Add(make([]byte, journalStart+100), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, applied uint64) {
		recs, last, end, err := readJournal(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), applied)
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
