package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/dicom"
)

// The Forwarder's STOW-RS transport (PS3.18 10.5, Store Instances): the
// instances the queue says are ready go to a DICOMweb archive as
// multipart/related; type="application/dicom" requests, one study per
// request and at most STOWBatch instances or STOWBatchBytes per request.
// Each part is the spooled Part 10 file as stored — meta header and data
// set, never re-encoded — so the archive keeps the bytes the modality sent.
//
// What the archive answers is honoured per instance. An instance in the
// response's Referenced SOP Sequence (0008,1199) is delivered; one in the
// Failed SOP Sequence (0008,1198) is refused with its Failure Reason
// (0008,1197), which is a C-STORE status and is settled by the same rules
// (A9xx, 0122, 0124 can dead-letter it; anything else is retried). An
// instance the answer does not mention is delivered after a 200 (all
// stored) and retried after anything else. The whole request is retried —
// the destination waits, with backoff — when no answer came (a timeout, a
// broken connection), on 408, 429 and 5xx, on a 200 whose body is not such
// an answer (empty, an HTML page: not an archive), and when the answer says the
// destination is misconfigured rather than anything about the instances:
// 401 and 403 (credentials), 3xx, 404 and 405 (the URL). Those never
// dead-letter anything; the reason is shown in Stats.
//
// Sending an instance the archive already has is harmless: it is the same
// SOP Instance UID with the same content, which an archive keeps once. So
// a crash between the archive's answer and the Ledger's marks costs a
// second copy of the request, not a second copy of the instances.

const (
	defaultSTOWBatch      = 50
	defaultSTOWBatchBytes = 64 << 20
	// maxSTOWResponse bounds what is read of an answer: a list of a few
	// thousand references fits many times over.
	maxSTOWResponse = 4 << 20
)

// stowName is a base URL without credentials, query, fragment or trailing
// slash: the destination's name in the Ledger, Stats and logs.
func stowName(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return strings.TrimRight(base, "/")
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return strings.TrimRight(u.String(), "/")
}

// stowTransport sends by STOW-RS.
type stowTransport struct {
	f            *Forwarder
	client       *http.Client
	connFailures int
	// tooLarge is the request size (in instances) the archive last refused
	// with 413, and so the most a request holds from then on; 0: no limit
	// learnt.
	tooLarge int
}

// stowPart is one instance of a request: the spooled file opened, with
// the entry it was opened as (the content whose mark is written).
type stowPart struct {
	it   *fwdItem
	uid  string // SOP Instance UID
	file *os.File
	size int64
	sha  string
}

func (s *stowTransport) batchSize() int {
	n := s.f.Dest.STOWBatch
	if n <= 0 {
		n = defaultSTOWBatch
	}
	if s.tooLarge > 0 && s.tooLarge/2 < n {
		n = max(1, s.tooLarge/2)
	}
	return n
}

func (s *stowTransport) batchBytes() int64 {
	if b := s.f.Dest.STOWBatchBytes; b > 0 {
		return b
	}
	return defaultSTOWBatchBytes
}

func (s *stowTransport) httpClient() *http.Client {
	if s.client == nil {
		hc := &http.Client{Timeout: 5 * time.Minute}
		if s.f.Dest.HTTP != nil {
			c := *s.f.Dest.HTTP
			hc = &c
		}
		// A redirect would turn the POST into a GET, or send the body to
		// an address nobody configured: the answer is taken as it is.
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		s.client = hc
	}
	return s.client
}

func (s *stowTransport) idle(time.Duration) time.Duration { return 0 }

func (s *stowTransport) close() { s.httpClient().CloseIdleConnections() }

// send groups the batch by study, in the order the queue gave, and posts
// each study's instances in requests within the bounds.
func (s *stowTransport) send(ctx context.Context, batch []*fwdItem, marks *forwardMarks) (carry []*fwdItem, pause time.Duration) {
	f := s.f
	var studies []string
	byStudy := map[string][]*fwdItem{}
	for _, it := range batch {
		f.mu.Lock()
		current := f.items[it.key] == it
		f.mu.Unlock()
		if !current {
			continue
		}
		in, err := f.Spool.Get(it.key)
		if err != nil {
			f.unreadable(it, err)
			continue
		}
		if _, ok := byStudy[in.Group]; !ok {
			studies = append(studies, in.Group)
		}
		byStudy[in.Group] = append(byStudy[in.Group], it)
	}
	for i, study := range studies {
		items := byStudy[study]
		for len(items) > 0 {
			if ctx.Err() != nil {
				return nil, 0
			}
			parts, rest := s.open(study, items)
			items = rest
			if len(parts) == 0 {
				continue
			}
			ok, d := s.post(ctx, study, parts, marks)
			marks.flush()
			if !ok {
				if ctx.Err() != nil {
					return nil, 0
				}
				// The archive cannot take anything now: what was not
				// sent waits with the request's instances, first in line.
				for _, p := range parts {
					carry = append(carry, p.it)
				}
				carry = append(carry, items...)
				for _, st := range studies[i+1:] {
					carry = append(carry, byStudy[st]...)
				}
				return carry, d
			}
		}
	}
	return nil, 0
}

// open opens the next request's instances of study, up to the bounds: the
// first one always (however large), the others while they fit. It returns
// them and the items left for the next request. An instance replaced by
// one of another study since it was grouped waits briefly and is grouped
// again; one that cannot be read waits with the reason shown.
func (s *stowTransport) open(study string, items []*fwdItem) (parts []stowPart, rest []*fwdItem) {
	f := s.f
	var bytes int64
	for i, it := range items {
		if len(parts) >= s.batchSize() {
			return parts, items[i:]
		}
		file, in, err := f.Spool.Open(it.key)
		if err != nil {
			f.unreadable(it, err)
			continue
		}
		if in.Group != study {
			file.Close()
			f.mu.Lock()
			f.rescheduleLocked(it, f.Backoff.Delay(1), "")
			f.mu.Unlock()
			continue
		}
		// The meta header says which instance the file is; without one
		// it is not a Part 10 file and cannot be a part.
		m, _, err := dicom.ReadFileMeta(bufio.NewReader(file))
		if err == nil {
			_, err = file.Seek(0, io.SeekStart)
		}
		var size int64
		if err == nil {
			var st os.FileInfo
			if st, err = file.Stat(); err == nil {
				size = st.Size()
			}
		}
		if err != nil {
			file.Close()
			f.unreadable(it, fmt.Errorf("spooled file: %w", err))
			continue
		}
		if len(parts) > 0 && bytes+size > s.batchBytes() {
			file.Close()
			return parts, items[i:]
		}
		bytes += size
		parts = append(parts, stowPart{it: it, uid: m.SOPInstanceUID, file: file, size: size, sha: in.SHA256})
	}
	return parts, nil
}

// post sends one request and settles its instances. ok false: nothing was
// settled, the destination is to wait d (the reason is in Stats).
func (s *stowTransport) post(ctx context.Context, study string, parts []stowPart, marks *forwardMarks) (ok bool, d time.Duration) {
	f := s.f
	defer func() {
		for _, p := range parts {
			p.file.Close()
		}
	}()
	body, contentType, length := stowBody(parts)
	target := strings.TrimRight(f.Dest.STOWRS, "/") + "/studies"
	if study != "" {
		target += "/" + url.PathEscape(study)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return s.wait(fmt.Sprintf("cannot make a request to %s: %v", stowName(f.Dest.STOWRS), err))
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/dicom+json")
	req.Header.Set("User-Agent", "wardgate")
	resp, err := s.httpClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, 0
		}
		reason := httpFailure(err)
		f.Logger.Warn("dicom: DICOMweb archive unreachable; retrying", "reason", reason)
		return s.wait("cannot reach the archive: " + reason)
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxSTOWResponse))
	resp.Body.Close()
	code := resp.StatusCode
	switch {
	case err != nil && ctx.Err() != nil:
		return false, 0
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		f.Logger.Warn("dicom: DICOMweb archive refused the credentials; check the destination's auth", "status", code)
		return s.wait(fmt.Sprintf("the archive refused the credentials (HTTP %d %s): check the destination's auth", code, http.StatusText(code)))
	case code/100 == 3 || code == http.StatusNotFound || code == http.StatusMethodNotAllowed:
		f.Logger.Warn("dicom: DICOMweb archive does not take STOW-RS at the configured URL", "status", code)
		return s.wait(fmt.Sprintf("the archive answered HTTP %d %s: check the stow_rs URL (the DICOMweb base, without /studies)", code, http.StatusText(code)))
	case code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || err != nil:
		f.Logger.Warn("dicom: DICOMweb archive failed a request; retrying", "status", code)
		return s.wait(fmt.Sprintf("the archive answered HTTP %d %s", code, http.StatusText(code)))
	}
	res, perr := parseSTOWResponse(answer)
	if code == http.StatusOK && perr != nil {
		// "All stored" from something that does not speak STOW-RS (a
		// proxy's default page, an app answering every path) would mark
		// instances delivered that no archive has: nothing is settled.
		f.Logger.Warn("dicom: DICOMweb archive answered 200 without a STOW-RS answer; check the stow_rs URL", "err", perr)
		return s.wait("the archive answered HTTP 200 without a STOW-RS answer (a Store Instances Response in DICOM JSON): check the stow_rs URL")
	}
	s.connFailures = 0
	if code == http.StatusRequestEntityTooLarge {
		s.tooLarge = len(parts)
	}
	if perr != nil && code != http.StatusOK {
		f.Logger.Debug("dicom: DICOMweb answer not understood", "status", code, "err", perr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastErr, f.conn = "", true
	for _, p := range parts {
		if _, ok := res.Referenced[p.uid]; ok {
			f.settleLocked(p.it, p.sha, p.uid, dicom.StatusSuccess, marks)
		} else if reason, ok := res.Failed[p.uid]; ok {
			f.settleLocked(p.it, p.sha, p.uid, reason, marks)
		} else if code == http.StatusOK {
			// 200: the archive stored every instance of the request.
			f.settleLocked(p.it, p.sha, p.uid, dicom.StatusSuccess, marks)
		} else {
			reason := fmt.Sprintf("the archive answered HTTP %d %s without a word on the instance", code, http.StatusText(code))
			if code == http.StatusRequestEntityTooLarge {
				reason = "the archive refused the request as too large (HTTP 413)"
			}
			f.lastErr = reason
			f.failedLocked(p.it, reason)
		}
	}
	return true, 0
}

// wait records why the destination cannot take anything now and returns
// how long it waits.
func (s *stowTransport) wait(reason string) (bool, time.Duration) {
	s.connFailures++
	s.f.setErr(reason, false)
	return false, s.f.Backoff.Delay(s.connFailures)
}

// stowBody is a request's body: each part the spooled file as it is. Its
// length is known, so that the archive gets a Content-Length rather than
// a chunked body.
func stowBody(parts []stowPart) (body io.Reader, contentType string, length int64) {
	var b [24]byte
	rand.Read(b[:])
	boundary := "wardgate-" + hex.EncodeToString(b[:])
	var readers []io.Reader
	for i, p := range parts {
		head := "--" + boundary + "\r\nContent-Type: application/dicom\r\n\r\n"
		if i > 0 {
			head = "\r\n" + head
		}
		readers = append(readers, strings.NewReader(head), io.LimitReader(p.file, p.size))
		length += int64(len(head)) + p.size
	}
	tail := "\r\n--" + boundary + "--\r\n"
	readers = append(readers, strings.NewReader(tail))
	length += int64(len(tail))
	return io.MultiReader(readers...), `multipart/related; type="application/dicom"; boundary=` + boundary, length
}

// httpFailure names what kept a request from an answer, in a few words fit
// for Stats: the inner error, without the request's URL (which holds the
// Study Instance UID).
func httpFailure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out waiting for the archive"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens there)"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the archive closed the connection"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}
