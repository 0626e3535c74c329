package dicom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

func TestStorageProposals(t *testing.T) {
	got := StorageProposals([]SOPClassTransfer{
		{dicomtest.CTImage, ImplicitVRLittleEndian},
		{dicomtest.CTImage, ImplicitVRLittleEndian},
		{dicomtest.CTImage, JPEGLosslessSV1},
		{"1.2.840.10008.5.1.4.1.1.4", ExplicitVRLittleEndian},
		{"1.2.840.10008.5.1.4.1.1.4", ExplicitVRBigEndian},
	})
	want := []PresentationContextProposal{
		{dicomtest.CTImage, []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian}},
		{dicomtest.CTImage, []string{JPEGLosslessSV1}},
		{"1.2.840.10008.5.1.4.1.1.4", []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
		{"1.2.840.10008.5.1.4.1.1.4", []string{ExplicitVRBigEndian}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// TestSCUToStorescp echoes and stores every fixture over one association
// to DCMTK's storescp +B, which must receive each data set byte for byte.
func TestSCUToStorescp(t *testing.T) {
	port, dir := dicomtest.Storescp(t, "+xa", "-aet", "PACS")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx := context.Background()
	proposals := []PresentationContextProposal{{VerificationSOPClass, []string{ImplicitVRLittleEndian}}}
	for _, f := range dicomtest.Fixtures {
		// Exactly the file's own syntax: storescp would otherwise pick by
		// its own preference.
		proposals = append(proposals, PresentationContextProposal{dicomtest.CTImage, []string{f.TransferSyntax}})
	}
	as, err := Dialer{CallingAE: "WARDGATE", CalledAE: "PACS"}.Dial(ctx, addr, proposals)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := as.Echo(ctx); err != nil || st != StatusSuccess {
		t.Fatalf("echo: 0x%04x, %v", st, err)
	}
	for _, f := range dicomtest.Fixtures {
		path := dicomtest.FixturePath(t, f)
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m, off, err := ReadFileMeta(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := file.Seek(off, 0); err != nil {
			t.Fatal(err)
		}
		st, err := as.Store(ctx, m.SOPClassUID, m.SOPInstanceUID, m.TransferSyntaxUID, file)
		file.Close()
		if err != nil || st != StatusSuccess {
			t.Fatalf("%s: 0x%04x, %v", f.Name, st, err)
		}
		received := dicomtest.OnlyFile(t, dir)
		gotMeta, got := dataSetOf(t, received)
		_, want := dataSetOf(t, path)
		if len(want)%2 == 1 {
			// dcmconv leaves deflated data sets odd; we send them padded.
			want = append(want, 0)
		}
		if gotMeta.TransferSyntaxUID != f.TransferSyntax || !bytes.Equal(got, want) {
			t.Fatalf("%s: storescp received %d bytes in %s, sent %d in %s", f.Name, len(got), gotMeta.TransferSyntaxUID, len(want), f.TransferSyntax)
		}
		os.Remove(received)
	}
	if err := as.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// Offered Implicit VR LE with Explicit as the alternative, storescp
	// takes the one it prefers; the caller can tell which.
	as, err = Dialer{CallingAE: "WARDGATE", CalledAE: "PACS"}.Dial(ctx, addr, StorageProposals([]SOPClassTransfer{{dicomtest.CTImage, ImplicitVRLittleEndian}}))
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release(ctx)
	acc := as.Accepted()
	if len(acc) != 1 || !IsUncompressedLittleEndian(acc[0].TransferSyntax) {
		t.Fatalf("accepted %+v", acc)
	}
	t.Logf("storescp +xa chose %s from [implicit, explicit]", acc[0].TransferSyntax)
}

// failingReader yields n bytes of zeros, then calls then() and fails.
type failingReader struct {
	n    int
	then func()
	err  error
}

func (r *failingReader) Read(b []byte) (int, error) {
	if r.n == 0 {
		if r.then != nil {
			r.then()
		}
		return 0, r.err
	}
	k := min(len(b), r.n)
	clear(b[:k])
	r.n -= k
	return k, nil
}

// TestStoreSourceFails checks that a data set source failing mid-instance,
// or the context being cancelled, aborts the association and leaves no
// instance at the SCP.
func TestStoreSourceFails(t *testing.T) {
	for _, how := range []string{"reader error", "context cancelled"} {
		t.Run(how, func(t *testing.T) {
			store := newTestStore(t)
			s := quietServer(&Server{Store: store})
			host, port := startServer(t, s)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			as, err := Dialer{CallingAE: "GO", CalledAE: "X", MaxPDULength: 4096}.Dial(ctx, host+":"+port,
				StorageProposals([]SOPClassTransfer{{dicomtest.CTImage, ExplicitVRLittleEndian}}))
			if err != nil {
				t.Fatal(err)
			}
			src := &failingReader{n: 100 << 10, err: errors.New("disk read failed")}
			if how == "context cancelled" {
				src.then, src.err = cancel, io.ErrNoProgress
			}
			_, err = as.Store(ctx, dicomtest.CTImage, "1.2.3.5", ExplicitVRLittleEndian, src)
			switch how {
			case "reader error":
				if err == nil || !strings.Contains(err.Error(), "disk read failed") {
					t.Fatalf("got %v", err)
				}
			case "context cancelled":
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("got %v", err)
				}
			}
			select {
			case <-store.aborted:
			case <-time.After(5 * time.Second):
				t.Fatal("SCP did not abort the partial instance")
			}
			if _, err := as.Echo(context.Background()); err == nil {
				t.Fatal("association still usable")
			}
			if store.count() != 0 {
				t.Fatal("partial instance committed")
			}
		})
	}
}
