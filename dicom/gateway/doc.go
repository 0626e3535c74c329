// Package gateway is wardgate's own DICOM application, built on the
// protocol in package dicom and the stores in package buffer:
//
//   - Receiver stores each C-STORE into the spool, durable before the
//     C-STORE-RSP (receive.go);
//   - StudyAssembler hands a study over to the FHIR side once no instance
//     of it arrived for StableAfter (assembler.go);
//   - one Forwarder per PACS sends spooled instances by C-STORE, retrying
//     and dead-lettering refusals (forward_queue.go, forward_send.go);
//   - Ledger records durably what became of each spooled instance: handed
//     over, delivered, forwarded, refused for good (ledger.go);
//   - Pruner removes instances that every destination and the record have
//     (prune.go);
//   - Node wires them together behind one dicom.Server (node.go).
//
// It never imports edge: the FHIR side is a StudySink.
package gateway
