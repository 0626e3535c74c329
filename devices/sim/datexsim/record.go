package datexsim

import (
	"encoding/binary"
	"time"

	"github.com/wardgate/wardgate/devices/datex"
)

// Record is the displayed-values record the simulator sends as its n-th
// (from 0), at its clock's time at: one sub-record of the basic class.
// What it holds, raw (see datex.Fields for the scaling):
//
//	ecg     status 3 (module, measuring), hr 60+n%30, st1-3 0, imp_rr 14
//	p1      ART (label 1): 12000+100·(n%10) / 8000 / 9300, hr 60+n%30
//	p2      no module: status 0, every value −32767 (no data)
//	p3, p4  status 0, −32767
//	nibp    12000 / 8000 / 9300, hr 62; label bit 8 (older than 60 s) from n ≥ 12
//	t1      3710 (37.10 °C); t2 −32764 (under range); t3, t4 −32767
//	spo2    9700−100·(n%3), pr 60+n%30
//	co2     et 500 (5.00 %), fi 0, rr 12+n%4, amb_press 7600 (760.0 mmHg): etCO2 38 mmHg
//	o2      −32767
//	p5, p6  −32767
func Record(n int, at time.Time, level uint8, plug uint16) []byte {
	rec := make([]byte, datex.HeaderLen+datex.SubrecordLen)
	binary.LittleEndian.PutUint16(rec, uint16(len(rec)))
	rec[2] = byte(n)
	rec[3] = level
	binary.LittleEndian.PutUint16(rec[4:], plug)
	binary.LittleEndian.PutUint32(rec[6:], uint32(at.Unix()))
	binary.LittleEndian.PutUint16(rec[14:], datex.MainPhysiological)
	// sr_desc[0] = {offset 0, displayed}; sr_desc[1] ends the list.
	rec[16+2] = datex.SubDisplayed
	rec[16+3+2] = 0xFF

	sub := rec[datex.HeaderLen:]
	binary.LittleEndian.PutUint32(sub, uint32(at.Unix()))
	blk := sub[4 : 4+datex.ClassLen]
	// Every value "no data" first, then what the monitor measures.
	for _, f := range datex.Fields() {
		put(blk, f.Offset, -32767)
	}
	hr := int16(60 + n%30)
	group(blk, 0, 3, 0)
	put(blk, 6, hr)
	put(blk, 8, 0)
	put(blk, 10, 0)
	put(blk, 12, 0)
	put(blk, 14, 14)
	group(blk, 16, 3, 1) // p1: ART
	put(blk, 22, int16(12000+100*(n%10)))
	put(blk, 24, 8000)
	put(blk, 26, 9300)
	put(blk, 28, hr)
	var nibpLabel uint16 = 3 // adult cuff
	if n >= 12 {
		nibpLabel |= datex.NIBPOld
	}
	group(blk, 72, 3, nibpLabel)
	put(blk, 78, 12000)
	put(blk, 80, 8000)
	put(blk, 82, 9300)
	put(blk, 84, 62)
	group(blk, 86, 3, 1) // t1
	put(blk, 92, 3710)
	group(blk, 94, 3, 7) // t2
	put(blk, 100, -32764)
	group(blk, 118, 3, 0)
	put(blk, 124, int16(9700-100*(n%3)))
	put(blk, 126, hr)
	group(blk, 132, 3, 1)
	put(blk, 138, 500)
	put(blk, 140, 0)
	put(blk, 142, int16(12+n%4))
	put(blk, 144, 7600)
	// cl_drilvl_subt: basic class, displayed values.
	binary.LittleEndian.PutUint16(sub[datex.SubrecordLen-2:], datex.ClassBasic<<8|datex.SubDisplayed)
	return rec
}

func put(blk []byte, at int, v int16) { binary.LittleEndian.PutUint16(blk[at:], uint16(v)) }

func group(blk []byte, at int, status uint32, label uint16) {
	binary.LittleEndian.PutUint32(blk[at:], status)
	binary.LittleEndian.PutUint16(blk[at+4:], label)
}
