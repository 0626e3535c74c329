// Package test holds wardgate's end-to-end tests: they build the real binary,
// run it against real peers (DCMTK, Mosquitto, socat, Chromium, installed by
// ./test/run) and check what a user would see. Helpers shared by those tests
// live here too.
package test
