// Package datex is the client side of the GE Datex-Ohmeda S/5 computer
// interface (the Datex-Ohmeda Record Interface, DRI, over RS-232): S/5
// AS/3, CS/3 and Compact monitors and the CARESCAPE B450/B650/B850. It is
// the protocol only: framing (Unframer, AppendFrame, SerialLink), records
// (ParseHeader, Request, DecodeRecord) and the dialogue that asks for the
// displayed values (Dialogue, a devices.Dialogue). What a value is charted
// as (its MDC code, its range, which state bits drop it) is the firmware
// profile's; mdc.Datex maps the fields to MDC terms.
//
// # Line
//
// 19200 baud, 8 data bits, even parity, 1 stop bit, RTS/CTS flow control
// (CARESCAPE software 3 and later can be set to 115200). Records travel
// between 0x7E flags with 0x7D escapes and an 8-bit sum of the unescaped
// bytes (see frame.go); all numbers are little-endian.
//
// # Records
//
// A record is a 40-byte header (r_len, r_nbr, dri_level, plug_id, r_time
// in Unix seconds, r_maintype, and eight sub-record descriptors ending at
// type 0xFF) and its sub-records, 1490 bytes at most. A physiological
// sub-record is its time (u32), a 270-byte class block, and marker,
// reserved and cl_drilvl_subt, whose bits 8–11 name the class (0 basic,
// 1–3 ext1–ext3); where cl_drilvl_subt is cut off or names no class, the
// sub-record's place in the table stands for it (basic, ext1, ext2, ext3,
// the order VSCapture assumes). Only the basic class is decoded.
//
// # Values
//
// Each record gives one devices.DriverFrame: DeviceTime is r_time,
// Firmware the interface level ("DRI level '15"), and one DriverValue per
// field of each basic sub-record, Field named "group.value", Value after
// the protocol's fixed scaling in Unit (UCUM):
//
//	ecg.hr ecg.imp_rr                       /min  (×1; hr from the monitor's HR source)
//	ecg.st1 ecg.st2 ecg.st3                 mm    (×0.01)
//	p1…p6 .sys .dia .mean                   mm[Hg] (×0.01; the site in the label: 1 ART, 2 CVP, 3 PA, 4 RAP, 5 RVP, 6 LAP, 7 ICP, 8 ABP)
//	p1…p6 .hr                               /min  (×1)
//	nibp.sys nibp.dia nibp.mean             mm[Hg] (×0.01)
//	nibp.hr                                 /min  (×1)
//	t1…t4 .temp                             Cel   (×0.01; the site in the label)
//	spo2.spo2                               %     (×0.01)
//	spo2.pr                                 /min  (×1)
//	co2.et co2.fi                           mm[Hg] (raw 1/100 % × amb_press 1/10 mmHg × 1e-5)
//	co2.rr                                  /min  (×1)
//	co2.amb_press                           mm[Hg] (×0.1)
//	o2.et o2.fi                             %     (×0.01)
//
// Fields lists them with their offsets. A raw value at or below −32001 is a
// marker, not a number: Value is NaN and State says which (Marker). State
// packs the group's status bits 0–15 (bit 0 module present, bit 1
// measuring), its label bits 0–11 and the marker in bits 28–31 (StateOf).
// A trend sub-record's values carry the sub-record's time; NIBP values
// carry the latest cuff measurement's time when the record holds an
// auxiliary sub-record (the monitor shows the last reading until the next
// cycle, flagging it older than 60 s in label bit 8, NIBPOld).
//
// # Sources
//
// GE's "S/5 Computer Interface Specification" (M1017617) and "Datex-Ohmeda
// S/5 DRI Specification" (8005313), as published in KaiWU17TUM/icu_devices;
// VSCapture (xeonfusion) for the structures, the scaling and the framing it
// checks; a public measure table written against the specification for
// the status and label bits; wardgate's RESEARCH-DEVICES.md §3 and §6.
package datex
