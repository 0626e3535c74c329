package dicom

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Item types of the variable part of A-ASSOCIATE-RQ/AC PDUs (PS3.8 9.3.2,
// 9.3.3 and Annex D).
const (
	itemApplicationContext = 0x10
	itemPresentationRQ     = 0x20
	itemPresentationAC     = 0x21
	itemAbstractSyntax     = 0x30
	itemTransferSyntax     = 0x40
	itemUserInformation    = 0x50
	subitemMaxLength       = 0x51
	subitemImplClassUID    = 0x52
	subitemAsyncOps        = 0x53
	subitemRoleSelection   = 0x54
	subitemImplVersionName = 0x55
)

// Presentation context results in an A-ASSOCIATE-AC (PS3.8 9.3.3.2).
const (
	contextAccepted                  = 0
	contextUserRejection             = 1
	contextNoReason                  = 2
	contextAbstractSyntaxUnsupported = 3
	contextTransferSyntaxUnsupported = 4
)

// presentationContext is a presentation context item of an A-ASSOCIATE-RQ
// (item 0x20: abstract syntax, transfer syntaxes proposed) or -AC (item
// 0x21: result, one transfer syntax).
type presentationContext struct {
	ID               byte
	Result           byte // AC only
	AbstractSyntax   string
	TransferSyntaxes []string
}

// roleSelection is an SCP/SCU role selection sub-item (PS3.7 D.3.3.4).
type roleSelection struct {
	SOPClassUID string
	SCU, SCP    bool
}

// userInformation is the user information item (0x50).
type userInformation struct {
	MaxPDULength           uint32 // 0: unlimited
	ImplementationClassUID string
	ImplementationVersion  string
	AsyncOps               *[2]uint16 // invoked, performed; nil: absent
	Roles                  []roleSelection
}

// associate is the body of an A-ASSOCIATE-RQ or -AC PDU.
type associate struct {
	ProtocolVersion    uint16
	CalledAE           string
	CallingAE          string
	ApplicationContext string
	Contexts           []presentationContext
	User               userInformation
}

// itemReader walks the items of a byte slice with bounds checks.
type itemReader struct {
	b   []byte
	off int
	// where names the enclosing structure in errors.
	where string
}

// next returns the next item's type and value, whose 2-byte length must
// stay within the slice.
func (r *itemReader) next() (typ byte, val []byte, err error) {
	if len(r.b)-r.off < 4 {
		return 0, nil, fmt.Errorf("%s: truncated item header at offset %d", r.where, r.off)
	}
	typ = r.b[r.off]
	n := int(binary.BigEndian.Uint16(r.b[r.off+2:]))
	if len(r.b)-r.off-4 < n {
		return 0, nil, fmt.Errorf("%s: item 0x%02x at offset %d claims %d bytes, %d left",
			r.where, typ, r.off, n, len(r.b)-r.off-4)
	}
	val = r.b[r.off+4 : r.off+4+n]
	r.off += 4 + n
	return typ, val, nil
}

func (r *itemReader) more() bool { return r.off < len(r.b) }

// decodeAssociate parses the body (after the 6-byte PDU header) of an
// A-ASSOCIATE-RQ (ac false) or -AC (ac true).
func decodeAssociate(body []byte, ac bool) (*associate, error) {
	name := "A-ASSOCIATE-RQ"
	if ac {
		name = "A-ASSOCIATE-AC"
	}
	if len(body) < 68 {
		return nil, fmt.Errorf("%s: %d bytes, fixed fields need 68", name, len(body))
	}
	a := &associate{
		ProtocolVersion: binary.BigEndian.Uint16(body[0:]),
		CalledAE:        trimAE(body[4:20]),
		CallingAE:       trimAE(body[20:36]),
	}
	r := itemReader{b: body[68:], where: name}
	appContexts, users := 0, 0
	for r.more() {
		typ, val, err := r.next()
		if err != nil {
			return nil, err
		}
		switch typ {
		case itemApplicationContext:
			appContexts++
			a.ApplicationContext = trimUID(val)
		case itemPresentationRQ, itemPresentationAC:
			if (typ == itemPresentationAC) != ac {
				return nil, fmt.Errorf("%s: presentation context item of type 0x%02x", name, typ)
			}
			pc, err := decodePresentationContext(val, ac)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			a.Contexts = append(a.Contexts, pc)
		case itemUserInformation:
			users++
			if err := decodeUserInformation(val, &a.User); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		default:
			return nil, fmt.Errorf("%s: unknown item type 0x%02x", name, typ)
		}
	}
	if appContexts != 1 {
		return nil, fmt.Errorf("%s: %d application context items, want 1", name, appContexts)
	}
	if users > 1 {
		return nil, fmt.Errorf("%s: %d user information items", name, users)
	}
	return a, nil
}

func decodePresentationContext(val []byte, ac bool) (presentationContext, error) {
	if len(val) < 4 {
		return presentationContext{}, fmt.Errorf("presentation context item of %d bytes", len(val))
	}
	pc := presentationContext{ID: val[0]}
	if ac {
		pc.Result = val[2]
	}
	r := itemReader{b: val[4:], where: fmt.Sprintf("presentation context %d", pc.ID)}
	abstracts := 0
	for r.more() {
		typ, v, err := r.next()
		if err != nil {
			return pc, err
		}
		switch typ {
		case itemAbstractSyntax:
			if ac {
				return pc, fmt.Errorf("presentation context %d: abstract syntax in an A-ASSOCIATE-AC", pc.ID)
			}
			abstracts++
			pc.AbstractSyntax = trimUID(v)
		case itemTransferSyntax:
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, trimUID(v))
		default:
			return pc, fmt.Errorf("presentation context %d: unknown sub-item 0x%02x", pc.ID, typ)
		}
	}
	if !ac && (abstracts != 1 || len(pc.TransferSyntaxes) == 0) {
		return pc, fmt.Errorf("presentation context %d: %d abstract syntaxes and %d transfer syntaxes",
			pc.ID, abstracts, len(pc.TransferSyntaxes))
	}
	if ac && pc.Result == contextAccepted && len(pc.TransferSyntaxes) != 1 {
		return pc, fmt.Errorf("presentation context %d: accepted with %d transfer syntaxes", pc.ID, len(pc.TransferSyntaxes))
	}
	return pc, nil
}

func decodeUserInformation(val []byte, u *userInformation) error {
	r := itemReader{b: val, where: "user information"}
	for r.more() {
		typ, v, err := r.next()
		if err != nil {
			return err
		}
		switch typ {
		case subitemMaxLength:
			if len(v) != 4 {
				return fmt.Errorf("maximum length sub-item of %d bytes", len(v))
			}
			u.MaxPDULength = binary.BigEndian.Uint32(v)
		case subitemImplClassUID:
			u.ImplementationClassUID = trimUID(v)
		case subitemImplVersionName:
			u.ImplementationVersion = strings.TrimRight(string(v), " \x00")
		case subitemAsyncOps:
			if len(v) != 4 {
				return fmt.Errorf("asynchronous operations window sub-item of %d bytes", len(v))
			}
			u.AsyncOps = &[2]uint16{binary.BigEndian.Uint16(v), binary.BigEndian.Uint16(v[2:])}
		case subitemRoleSelection:
			if len(v) < 2 {
				return fmt.Errorf("role selection sub-item of %d bytes", len(v))
			}
			n := int(binary.BigEndian.Uint16(v))
			if len(v) != 2+n+2 {
				return fmt.Errorf("role selection sub-item: UID length %d in %d bytes", n, len(v))
			}
			u.Roles = append(u.Roles, roleSelection{
				SOPClassUID: trimUID(v[2 : 2+n]),
				SCU:         v[2+n] == 1,
				SCP:         v[3+n] == 1,
			})
		default:
			// Extended negotiation, user identity and future sub-items:
			// PS3.7 D.3.3 lets an acceptor ignore what it does not support.
		}
	}
	return nil
}

// appendItem appends an item header of type typ and value val.
func appendItem(b []byte, typ byte, val string) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(val)))
	return append(b, val...)
}

// appendAssociate appends a complete A-ASSOCIATE-RQ (typ 0x01) or -AC (0x02)
// PDU to b.
func appendAssociate(b []byte, typ byte, a *associate) []byte {
	start := len(b)
	b = append(b, typ, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, a.ProtocolVersion)
	b = append(b, 0, 0)
	b = appendAE(b, a.CalledAE)
	b = appendAE(b, a.CallingAE)
	b = append(b, make([]byte, 32)...)
	b = appendItem(b, itemApplicationContext, a.ApplicationContext)
	for _, pc := range a.Contexts {
		itemStart := len(b)
		if typ == pduAssociateRQ {
			b = append(b, itemPresentationRQ, 0, 0, 0, pc.ID, 0, 0, 0)
			b = appendItem(b, itemAbstractSyntax, pc.AbstractSyntax)
		} else {
			b = append(b, itemPresentationAC, 0, 0, 0, pc.ID, 0, pc.Result, 0)
		}
		for _, ts := range pc.TransferSyntaxes {
			b = appendItem(b, itemTransferSyntax, ts)
		}
		binary.BigEndian.PutUint16(b[itemStart+2:], uint16(len(b)-itemStart-4))
	}
	userStart := len(b)
	b = append(b, itemUserInformation, 0, 0, 0)
	b = append(b, subitemMaxLength, 0, 0, 4)
	b = binary.BigEndian.AppendUint32(b, a.User.MaxPDULength)
	if a.User.ImplementationClassUID != "" {
		b = appendItem(b, subitemImplClassUID, a.User.ImplementationClassUID)
	}
	if a.User.AsyncOps != nil {
		b = append(b, subitemAsyncOps, 0, 0, 4)
		b = binary.BigEndian.AppendUint16(b, a.User.AsyncOps[0])
		b = binary.BigEndian.AppendUint16(b, a.User.AsyncOps[1])
	}
	for _, r := range a.User.Roles {
		b = append(b, subitemRoleSelection, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(2+len(r.SOPClassUID)+2))
		b = binary.BigEndian.AppendUint16(b, uint16(len(r.SOPClassUID)))
		b = append(b, r.SOPClassUID...)
		b = append(b, boolByte(r.SCU), boolByte(r.SCP))
	}
	if a.User.ImplementationVersion != "" {
		b = appendItem(b, subitemImplVersionName, a.User.ImplementationVersion)
	}
	binary.BigEndian.PutUint16(b[userStart+2:], uint16(len(b)-userStart-4))
	binary.BigEndian.PutUint32(b[start+2:], uint32(len(b)-start-6))
	return b
}

// checkAssociateSizes guards appendAssociate's 16-bit item lengths.
func checkAssociateSizes(a *associate) error {
	if len(a.Contexts) > 128 {
		return fmt.Errorf("%d presentation contexts, at most 128 fit in one association", len(a.Contexts))
	}
	for _, pc := range a.Contexts {
		n := 4 + len(pc.AbstractSyntax)
		for _, ts := range pc.TransferSyntaxes {
			if len(ts) > 64 {
				return fmt.Errorf("transfer syntax UID %q longer than 64", ts)
			}
			n += 4 + len(ts)
		}
		if len(pc.AbstractSyntax) > 64 || n > 0xFFFF {
			return fmt.Errorf("presentation context for %q too large", pc.AbstractSyntax)
		}
	}
	return nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// appendAE appends an AE title padded with spaces to 16 bytes.
func appendAE(b []byte, ae string) []byte {
	if len(ae) > 16 {
		ae = ae[:16]
	}
	b = append(b, ae...)
	for i := len(ae); i < 16; i++ {
		b = append(b, ' ')
	}
	return b
}

// trimAE removes the insignificant leading and trailing spaces of an AE
// title (PS3.5 Table 6.2-1) and any NUL padding sent by careless peers.
func trimAE(b []byte) string { return strings.Trim(string(b), " \x00") }

// trimUID removes the NUL (or, from lax peers, space) padding of a UID.
func trimUID(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }
