// Package edge is the gateway itself: it reads the config, takes the data
// folder, opens the stores (outbox, held frames, spool, ledger), decides
// whose reading is whose (beds, stays, the held frames' resolver), hands
// readings and studies to the FHIR mapper and the outbox, and runs the
// long-running parts (delivery, the status server, the DICOM node, the
// monitor sources) under one supervisor that stops them in reverse order.
// It serves the status page, the API and /metrics from one snapshot.
// Mapping to FHIR and delivery are in edge/fhir, the config in edge/config.
package edge
