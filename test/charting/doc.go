// Package charting holds the end-to-end tests of charting by interval
// (issue 16): a wardgate binary with real peers (socat, Mosquitto) and the
// project's test FHIR record, in real time.
package charting
