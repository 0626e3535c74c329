package intellivue

// fcsTable is RFC 1662's table for the PPP FCS-16 (CRC-16/X-25): the
// polynomial x^16+x^12+x^5+1, bits reflected (0x8408).
var fcsTable = func() (t [256]uint16) {
	for b := range 256 {
		v := uint16(b)
		for range 8 {
			if v&1 != 0 {
				v = v>>1 ^ 0x8408
			} else {
				v >>= 1
			}
		}
		t[b] = v
	}
	return t
}()

// FCS16 is the frame check sequence of a serial frame (RFC 1662: initial
// 0xFFFF, complemented at the end), over the frame's header and data
// before escaping. It is sent low byte first.
func FCS16(p []byte) uint16 {
	fcs := uint16(0xFFFF)
	for _, b := range p {
		fcs = fcs>>8 ^ fcsTable[byte(fcs)^b]
	}
	return ^fcs
}
