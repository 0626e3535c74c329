// Package hl7 is the HL7 version 2 protocol, and only the protocol: a parser
// of ER7 ("pipe and hat") messages, the MLLP framing they travel in, and the
// acknowledgements a receiver sends back. What a message means (IHE PCD-01
// results, ADT events) belongs to the packages that read it (devices/pcd01).
//
// # Parsing
//
// Parse takes the encoding characters from the message itself (MSH-1, and
// MSH-2 with the truncation character of v2.7 when present), any that the
// sender chose, not only "|^~\&". Segments end in CR; LF and CRLF from
// sloppy senders are taken too, and blank lines are skipped. Parse copies the
// message once into a string it owns and indexes its segments and fields;
// every value handed out afterwards is a substring of that copy, so reading
// a field allocates nothing unless it holds escape sequences to resolve.
// A Message is immutable and safe for concurrent readers.
//
// Field numbering follows the standard: MSH-1 is the field separator
// itself and MSH-2 the encoding characters, so m.Field("MSH", 1, 10) is the
// control id (MSH-10), as written in every specification. Repetitions,
// components and sub-components are numbered from 1. A path names the same
// things in one string: "PV1-3.1", "PID-3(2).4.1", "OBX(3)-5" (the third
// OBX), see Message.Get.
//
// Parse is bounded (Limits: bytes and segments). Hostile input gives a
// *ParseError naming the segment and field where parsing stopped, never a
// panic. Errors never quote the content of a message: an HL7 message
// carries patient data, and errors end up in logs.
//
// # Libraries checked
//
// The Go HL7 v2 libraries known to us (github.com/lenaten/hl7,
// github.com/kardianos/hl7, github.com/google/simhospital's pkg/hl7 and
// github.com/TheOpenDictionary/gohl7) are not served by the module proxy
// this project builds from (each answers 403 "not available"), and none is
// listed among the Go packages at hand; those we know of were either
// unmaintained or tied to a fixed "|^~\&" or to a large schema layer
// (simhospital's is a fork of a generated parser with its own message
// definitions). This parser is small (one index over one string), takes
// any encoding characters, and is fuzzed (FuzzParse).
//
// # MLLP
//
// Reader returns one message at a time from a stream framed as MLLP
// release 2 (0x0B, message, 0x1C 0x0D). A frame larger than the bound is an
// error (*FrameTooLargeError) after which the caller closes the connection;
// bytes between frames are skipped and counted; a frame cut off by the end
// of the stream is ErrTruncatedFrame. WriteFrame writes one frame in one
// Write, so an acknowledgement never waits on Nagle's algorithm.
// Deadlines belong to the connection: set them on the net.Conn.
//
// # Acknowledgements
//
// Acks builds the acknowledgements a message asks for (see Acks for the
// rules of original and enhanced mode), mirroring the sender and receiver,
// echoing MSH-10 in MSA-2, in the message's own encoding characters and
// version, with an ERR segment naming the segment and field of an error.
package hl7
