// Package intellivue is the client side of the Philips IntelliVue Data
// Export protocol (MX/MP series, X2/X3), as a devices.Dialogue: it
// associates with the monitor, answers its MDS Create Event Report, polls
// the numerics, keeps the association alive, and hands each poll result
// over as a devices.DriverFrame in the monitor's own terms (the physio id
// as "0x%04X", the unit code in decimal, the measurement state, the FLOAT
// decoded, the monitor's clock). The firmware profile that names the
// dialogue maps those to MDC codes and UCUM units; nothing here decides
// what is charted.
//
// # Transports
//
// The LAN interface is UDP: the monitor broadcasts a Connect Indication on
// port 24005 (ParseConnectIndication), and a client talks to its port
// 24105 (UDPLink: one datagram is one message). The MIB/RS232 interface
// runs at 115200 8N1 without flow control; its frames are
// BOF | 11 01 length | data | FCS | EOF, with BOF, EOF and ESC escaped and
// the PPP FCS-16 of RFC 1662 (SerialLink, Deframer).
//
// # The session
//
//  1. Association request (session 0x0D) with a poll profile whose
//     extended options ask for numerics each second; the monitor accepts
//     (0x0E) or refuses (0x0C).
//  2. The monitor's MDS Create Event Report, which tells its model, serial
//     number and its clock as an absolute (BCD, often unset) and relative
//     (125 µs ticks) pair; the client answers it.
//  3. Numerics: at a poll period of 1 s, one extended poll
//     (NOM_ACT_POLL_MDIB_DATA_EXT with TIME_PD_POLL, 10 min by default)
//     after which the monitor sends linked results each second by itself;
//     it is asked again when 9/10 of its period have passed, when its final
//     result arrives, or when three periods pass without numerics. Longer
//     poll periods send a single poll each period.
//  4. Keep-alive: an MDS poll whenever nothing was sent or heard for
//     Options.KeepAlive (4 s); the monitor drops an association that is
//     quiet for 10 s or more. Nothing heard for Options.Silence (5 s) ends
//     Run with devices.ErrSilent.
//  5. Release (0x09, answered 0x0A) when Run's context ends; an abort
//     (0x19) from the monitor ends Run with ErrAborted.
//
// # Time
//
// Each frame's DeviceTime is the answer's absolute time when the monitor
// set it, else the answer's relative time dated by the last abs/rel pair
// the MDS gave. A value with its own stamp (an NIBP, which arrives once,
// in the first answer after the cuff) carries it in DriverValue.Time, so
// a late NIBP is not dated by the answer. The monitor's clock has no time
// zone: Options.Location says which it shows.
//
// # Bad input
//
// Every length and count is checked against the bytes there: an answer
// whose lengths claim more than it holds gives what is whole, and
// DriverFrame.Bad counts the rest; nothing is allocated from a count. The
// patient's demographics, which a monitor can send, are never asked for,
// and any that come are not read; logs hold no values.
package intellivue
