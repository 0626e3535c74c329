package buffer

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// spoolRecord13c encodes one spool journal record as append writes it.
func spoolRecord13c(seq uint64, in Instance) []byte {
	v, _ := json.Marshal(in)
	rec := make([]byte, 16, 16+len(v))
	binary.LittleEndian.PutUint64(rec[8:], seq)
	rec = append(rec, v...)
	binary.LittleEndian.PutUint32(rec, uint32(len(rec)-8))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], journalCRC))
	return rec
}

func cat13c(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// The spool's index journal is read back at open from whatever a crash, a
// bad disk or a hand edit left: reading it must never panic, return
// records out of sequence or at or below the applied mark, and once the
// journal has started again and taken a record, that record must be the
// first read back at the next open, whatever lay in the file before.
// The seeds (also under testdata/fuzz/FuzzSpoolJournal13c, run by every
// go test) cover torn records, length fields past the end, zeros, an old
// record after new ones and a sequence number repeated.
func FuzzSpoolJournal13c(f *testing.F) {
	e := func(k string) Instance {
		return Instance{Key: k, Group: "g", File: "objects/0a/w-" + k, Size: 10, SHA256: "00"}
	}
	r1, r2, r3 := spoolRecord13c(1, e("a")), spoolRecord13c(2, e("b")), spoolRecord13c(3, e("c"))
	long := spoolRecord13c(7, e("ddddddddddddddddd"))
	past := append([]byte{}, r1...)
	binary.LittleEndian.PutUint32(past, 1<<19) // length past the end
	f.Add(cat13c(r1, r2, r3), uint64(0))
	f.Add(cat13c(r1, r2, r3), uint64(2))
	f.Add(cat13c(r1, r2, r3[:len(r3)-5]), uint64(0))       // torn last record
	f.Add(cat13c(r1, r2, r3, make([]byte, 64)), uint64(1)) // zeros after
	f.Add(make([]byte, 256), uint64(0))
	f.Add(past, uint64(0))
	f.Add(cat13c(r2, r3, r1), uint64(0))             // an old record after new ones
	f.Add(cat13c(r1, r2, r2, r3), uint64(0))         // a sequence number repeated
	f.Add(cat13c(long, r1, r2), uint64(9))           // every record at or below applied
	f.Add(cat13c(r1[:10], r2, r3), uint64(0))        // a torn first record before whole ones
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0}, uint64(0)) // a record of 8 bytes: a seq and no entry
	torn := spoolRecord13c(1, e("new"))
	torn[12] ^= 1
	f.Add(cat13c(torn, spoolRecord13c(2, e("b"))), uint64(0)) // a torn record, then one a power cut kept
	f.Fuzz(func(t *testing.T, data []byte, applied uint64) {
		if applied > 1<<62 {
			applied = 1 << 62
		}
		path := filepath.Join(t.TempDir(), "index.journal")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, recs, err := openSpoolJournal(path, applied)
		if err != nil {
			t.Fatal(err)
		}
		prev := uint64(0)
		for _, r := range recs {
			if r.Seq <= applied || (prev != 0 && r.Seq != prev+1) || r.Seq > j.seq {
				t.Fatalf("record %d out of sequence (applied %d, previous %d, last %d)", r.Seq, applied, prev, j.seq)
			}
			prev = r.Seq
		}
		// As OpenSpool: the records are applied, the journal starts again,
		// a new store appends one record.
		last := j.seq
		if err := j.restart(last); err != nil {
			t.Fatal(err)
		}
		x := e("new")
		seq, err := j.append(x)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.sync(seq); err != nil {
			t.Fatal(err)
		}
		j.close()
		j2, recs2, err := openSpoolJournal(path, last)
		if err != nil {
			t.Fatal(err)
		}
		defer j2.close()
		if len(recs2) == 0 || recs2[0].Seq != seq || recs2[0].Entry.Key != "new" {
			t.Fatalf("after a restart and one append (seq %d), the next open read %+v", seq, recs2)
		}
	})
}
