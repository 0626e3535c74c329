package edge

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/edge/config"
)

// dicom.allow with a host that does not resolve does not stop the
// gateway: that entry admits nobody (until it resolves), the others work;
// an entry that resolved keeps its addresses when a later lookup fails.
func TestAllowListWithAHostThatDoesNotResolve(t *testing.T) {
	a := newAllowList([]config.DICOMPeer{
		{AETitle: "CT01", Host: "ct01.ward-4b.invalid"},
		{AETitle: "MR02", Host: "127.0.0.1"},
		{AETitle: "US03", Host: "localhost"},
		{AETitle: "ANY"},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	from := func(ae, ip string) dicom.Peer {
		return dicom.Peer{CallingAE: ae, Remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000}}
	}
	for _, tc := range []struct {
		p    dicom.Peer
		want bool
	}{
		{from("CT01", "127.0.0.1"), false},
		{from("MR02", "127.0.0.1"), true},
		{from("MR02", "10.0.0.1"), false},
		{from("US03", "127.0.0.1"), true},
		{from("ANY", "10.9.9.9"), true},
		{from("STRANGER", "127.0.0.1"), false},
	} {
		if got := a.allow(tc.p); got != tc.want {
			t.Errorf("%s from %v: %v, want %v", tc.p.CallingAE, tc.p.Remote, got, tc.want)
		}
	}
	if len(a.failing) != 1 {
		t.Fatalf("failing entries %v, want CT01's", a.failing)
	}
	// US03's name stops resolving: it keeps the addresses it had.
	a.names[2] = "us03.ward-4b.invalid"
	a.resolve(context.Background())
	if !a.allow(from("US03", "127.0.0.1")) {
		t.Fatal("a lookup that failed after one that worked locked US03 out")
	}
}
