// Package dicom is the DICOM network protocol: the PS3.8 upper layer
// (PDUs, association negotiation, timers) and PS3.7 DIMSE C-ECHO and
// C-STORE, and the N-ACTION and N-EVENT-REPORT of Storage Commitment (PS3.4
// Annex J, commitment*.go), as an SCP (Server) and an SCU (Dialer,
// Association), plus the
// PS3.10 file meta header (WriteFileMeta, ReadFileMeta) and the UIDs. It
// uses only the standard library (test/run checks that) and knows nothing
// of wardgate's stores.
//
// Beside it: dicom/dataset reads data sets (the headers wardgate keeps, the
// Little Endian converter), dicom/gateway is wardgate's own DICOM
// application (receive into the spool, assemble studies, forward to PACS,
// the ledger, pruning), and dicom/sim is a simulated modality.
//
// What the SCP promises, and what it needs from its StoreHandler:
//   - A data set reaches the StoreWriter exactly as received, in the
//     negotiated transfer syntax, as it arrives; it is never held whole in
//     memory.
//   - The C-STORE-RSP carries the status StoreWriter.Commit returned and is
//     sent only after Commit returned. Commit must therefore return success
//     only once the instance is durable (fsync): that is contract 1,
//     "acknowledged means durable".
//   - An instance that does not arrive completely (A-ABORT, broken or timed
//     out connection, protocol violation, Shutdown past its deadline) gets
//     StoreWriter.Abort and no response: nothing partial is kept.
//   - A refused instance (BeginStore or Write failing) is still read to its
//     end, so the association goes on; the response says A700 when the
//     error wraps ErrOutOfResources, C000 otherwise.
//
// Bounds: an A-ASSOCIATE PDU may not exceed 64 KiB, a P-DATA-TF the length
// we advertised, a command set 64 KiB; each is checked before anything is
// allocated. Every PDU must arrive within Timeouts.Read of its start, the
// association request within Timeouts.ARTIM, the next message within
// Timeouts.Idle. A peer breaking any of these is aborted; other
// associations do not notice. Every PDU we send goes out in one write.
//
// Logs carry AE titles, addresses, SOP class UIDs and statuses, never
// patient data.
package dicom
