// Package gateway is wardgate's own DICOM application, built on the
// protocol in package dicom and the stores in package buffer:
//
//   - Receiver stores each C-STORE into the spool, durable before the
//     C-STORE-RSP (receive.go);
//   - StudyAssembler hands a study over to the FHIR side once no instance
//     of it arrived for StableAfter (assembler.go);
//   - one Forwarder per destination sends spooled instances by C-STORE
//     to a PACS or by STOW-RS to a DICOMweb archive, retrying and
//     dead-lettering refusals (forward_queue.go, forward_transport.go,
//     forward_send.go, forward_stow.go);
//   - Ledger records durably what became of each spooled instance: handed
//     over, delivered, forwarded, refused for good (ledger.go);
//   - Pruner removes instances that every destination and the record have
//     (prune.go);
//   - Committer answers Storage Commitment requests, durably, and reports
//     on the requester's association or a new one (commitment.go);
//   - Node wires them together behind one dicom.Server (node.go).
//
// It never imports edge: the FHIR side is a StudySink.
package gateway
