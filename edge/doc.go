// Package edge is the gateway itself: it reads the config, takes the data
// folder, opens the outbox and the spool, starts the sources and listeners
// the config names, serves the status endpoints, and shuts all of it down in
// order. Mapping to FHIR and delivery live in sub-packages as they come.
package edge
