package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/edge/fhir"
)

// dicomFlags parses the options shared by echo and send.
func dicomFlags(name string, args []string, stderr io.Writer, minArgs int, operands string) (d dicom.Dialer, rest []string, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	aet := fs.String("aet", "WARDGATE", "our (calling) AE title")
	aec := fs.String("aec", "ANY-SCP", "the peer's (called) AE title")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on connecting and on each response")
	useTLS := fs.Bool("tls", false, "DICOM TLS (BCP 195 profile); implied by -ca, -cert and -key")
	ca := fs.String("ca", "", "PEM file of the CA that signs the peer's certificate (default: the system's)")
	cert := fs.String("cert", "", "PEM file of our client certificate, for a peer that requires one")
	key := fs.String("key", "", "PEM file of the client certificate's private key")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: wardgate %s [-aet A] [-aec B] [-timeout D] [-tls] [-ca F] [-cert F -key F] %s\n", name, operands)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return d, nil, false
	}
	if fs.NArg() < minArgs {
		fs.Usage()
		return d, nil, false
	}
	d = dicom.Dialer{CallingAE: *aet, CalledAE: *aec,
		Timeouts: dicom.Timeouts{ARTIM: *timeout, Read: *timeout, Idle: *timeout}}
	if *useTLS || *ca != "" || *cert != "" || *key != "" {
		cfg, err := clientTLS(*ca, *cert, *key)
		if err != nil {
			fmt.Fprintf(stderr, "wardgate %s: %v\n", name, err)
			return d, nil, false
		}
		d.TLS = cfg
	}
	return d, fs.Args(), true
}

// clientTLS is the TLS of echo and send, restricted to the BCP 195 profile.
func clientTLS(ca, cert, key string) (*tls.Config, error) {
	if (cert == "") != (key == "") {
		return nil, errors.New("-cert and -key go together")
	}
	var keyPEM []byte
	if key != "" {
		b, err := os.ReadFile(key)
		if err != nil {
			return nil, err
		}
		keyPEM = b
	}
	cfg, err := fhir.TLSConfig(ca, cert, keyPEM)
	if err != nil {
		return nil, err
	}
	return dicom.BCP195(cfg), nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// cmdEcho is `wardgate echo`: one C-ECHO, for commissioning.
func cmdEcho(args []string, stdout, stderr io.Writer) int {
	d, rest, ok := dicomFlags("echo", args, stderr, 1, "HOST:PORT")
	if !ok || len(rest) != 1 {
		return exitUsage
	}
	ctx, cancel := signalContext()
	defer cancel()
	start := time.Now()
	as, err := d.Dial(ctx, rest[0], []dicom.PresentationContextProposal{
		{AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}}})
	if err != nil {
		fmt.Fprintf(stderr, "echo %s: %v\n", rest[0], err)
		return exitFailure
	}
	echoStart := time.Now()
	status, err := as.Echo(ctx)
	rtt := time.Since(echoStart)
	if err != nil {
		as.Abort()
		fmt.Fprintf(stderr, "echo %s: %v\n", rest[0], err)
		return exitFailure
	}
	as.Release(ctx)
	if status != dicom.StatusSuccess {
		fmt.Fprintf(stdout, "echo %s (%s): status 0x%04X\n", rest[0], d.CalledAE, status)
		return exitFailure
	}
	fmt.Fprintf(stdout, "echo %s (%s): success in %s (with association %s)\n", rest[0], d.CalledAE,
		rtt.Round(time.Microsecond), time.Since(start).Round(time.Microsecond))
	return exitOK
}

// sendFile is one Part 10 file found for `send`.
type sendFile struct {
	path string
	meta dicom.FileMeta
}

// cmdSend is `wardgate send`: every Part 10 file found under the operands,
// over one association, each in its own transfer syntax.
func cmdSend(args []string, stdout, stderr io.Writer) int {
	d, rest, ok := dicomFlags("send", args, stderr, 2, "HOST:PORT FILE|DIR...")
	if !ok {
		return exitUsage
	}
	addr := rest[0]
	var files []sendFile
	failed := 0
	for _, root := range rest[1:] {
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			m, err := readMeta(p)
			if err != nil {
				if p == root { // named on the command line: say so
					fmt.Fprintf(stderr, "%s: not a DICOM Part 10 file: %v\n", p, err)
					failed++
				}
				return nil
			}
			files = append(files, sendFile{p, m})
			return nil
		})
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", root, err)
			failed++
		}
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "send: no DICOM files found")
		return exitFailure
	}
	var pairs []dicom.SOPClassTransfer
	for _, f := range files {
		pairs = append(pairs, dicom.SOPClassTransfer{SOPClassUID: f.meta.SOPClassUID, TransferSyntaxUID: f.meta.TransferSyntaxUID})
	}
	ctx, cancel := signalContext()
	defer cancel()
	as, err := d.Dial(ctx, addr, dicom.ExactStorageProposals(pairs))
	if err != nil {
		fmt.Fprintf(stderr, "send %s: %v\n", addr, err)
		return exitFailure
	}
	start := time.Now()
	sent := 0
	for _, f := range files {
		if !as.AcceptedTransferSyntax(f.meta.SOPClassUID, f.meta.TransferSyntaxUID) {
			fmt.Fprintf(stdout, "%s: not sent: the peer accepts SOP class %s only in another transfer syntax than the file's %s\n",
				f.path, f.meta.SOPClassUID, f.meta.TransferSyntaxUID)
			failed++
			continue
		}
		status, err := storeFile(ctx, as, f)
		if err != nil {
			fmt.Fprintf(stdout, "%s: failed: %v\n", f.path, err)
			failed++
			if ctx.Err() != nil || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			var ab *dicom.AbortError
			if errors.As(err, &ab) {
				break
			}
			continue
		}
		word := "success"
		switch {
		case status&0xF000 == 0xB000:
			word = "warning"
		case status != dicom.StatusSuccess:
			word = "failed"
			failed++
		}
		if word != "failed" {
			sent++
		}
		fmt.Fprintf(stdout, "%s: %s (0x%04X)\n", f.path, word, status)
	}
	if err := as.Release(ctx); err != nil {
		as.Abort()
	}
	fmt.Fprintf(stdout, "%d of %d sent in %s\n", sent, len(files), time.Since(start).Round(time.Millisecond))
	if failed > 0 {
		return exitFailure
	}
	return exitOK
}

func readMeta(path string) (dicom.FileMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return dicom.FileMeta{}, err
	}
	defer f.Close()
	m, _, err := dicom.ReadFileMeta(bufio.NewReader(f))
	return m, err
}

func storeFile(ctx context.Context, as *dicom.Association, sf sendFile) (uint16, error) {
	f, err := os.Open(sf.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	if _, _, err := dicom.ReadFileMeta(br); err != nil {
		return 0, err
	}
	return as.Store(ctx, sf.meta.SOPClassUID, sf.meta.SOPInstanceUID, sf.meta.TransferSyntaxUID, br)
}
