package hl7

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
)

func frame(s string) string { return "\x0b" + s + "\x1c\r" }

func readAll(t *testing.T, r *Reader) ([]string, error) {
	t.Helper()
	var got []string
	for {
		msg, err := r.ReadMessage()
		if err != nil {
			return got, err
		}
		got = append(got, string(msg))
	}
}

func TestReaderFrames(t *testing.T) {
	cases := []struct {
		name   string
		stream string
		want   []string
		err    error
		stats  ReaderStats
	}{
		{"one", frame("A"), []string{"A"}, io.EOF, ReaderStats{Frames: 1}},
		{"empty stream", "", nil, io.EOF, ReaderStats{}},
		{"several", frame("A") + frame("B\rC") + frame(""), []string{"A", "B\rC", ""}, io.EOF, ReaderStats{Frames: 3}},
		{"garbage between", "xx" + frame("A") + "\r\n\x00junk" + frame("B") + "tail", []string{"A", "B"}, io.EOF,
			ReaderStats{Frames: 2, GarbageBytes: 2 + 7 + 4, GarbageRuns: 3}},
		{"truncated at EOF", frame("A") + "\x0bMSH|^~\\&|cut", []string{"A"}, ErrTruncatedFrame, ReaderStats{Frames: 1}},
		{"end block without CR", "\x0bA\x1c\x0bB\x1c", []string{"A", "B"}, io.EOF, ReaderStats{Frames: 2, MissingCR: 2}},
		{"restart inside a frame", "\x0bhalf a mess\x0bB\x1c\r", []string{"B"}, io.EOF, ReaderStats{Frames: 1, Abandoned: 1}},
		{"end block alone is garbage", "\x1c\r" + frame("A"), []string{"A"}, io.EOF, ReaderStats{Frames: 1, GarbageBytes: 2, GarbageRuns: 1}},
	}
	for _, c := range cases {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(c.stream)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			r := NewReader(src, 100)
			got, err := readAll(t, r)
			if !errors.Is(err, c.err) || fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("%s (one byte %v): %q, %v; want %q, %v", c.name, oneByte, got, err, c.want, c.err)
			}
			if r.Stats() != c.stats {
				t.Errorf("%s (one byte %v): stats %+v, want %+v", c.name, oneByte, r.Stats(), c.stats)
			}
		}
	}
}

// countingReader counts what was read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReaderTooLarge(t *testing.T) {
	// A 10 MB message against a 1 MiB bound: an error that says so, after
	// reading little more than the bound.
	big := bytes.Repeat([]byte("OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97\r"), 10<<20/52)
	stream := append(append([]byte{StartBlock}, big...), EndBlock, '\r')
	src := &countingReader{r: bytes.NewReader(stream)}
	r := NewReader(src, 1<<20)
	_, err := r.ReadMessage()
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) || tl.Max != 1<<20 {
		t.Fatalf("err = %v, want a *FrameTooLargeError", err)
	}
	if !strings.Contains(err.Error(), "larger than the limit of 1048576 bytes") {
		t.Errorf("error %q does not say what the limit is", err)
	}
	if src.n > 2<<20 {
		t.Errorf("read %d bytes before refusing a frame over 1 MiB", src.n)
	}
	// Exactly at the bound is taken.
	r = NewReader(bytes.NewReader(AppendFrame(nil, big[:1000])), 1000)
	if msg, err := r.ReadMessage(); err != nil || len(msg) != 1000 {
		t.Errorf("frame at the bound: %d bytes, %v", len(msg), err)
	}
	r = NewReader(bytes.NewReader(AppendFrame(nil, big[:1001])), 1000)
	if _, err := r.ReadMessage(); !errors.As(err, &tl) {
		t.Errorf("frame one over the bound: %v", err)
	}
}

// TestReaderConnection sends many messages over one TCP connection, each
// answered before the next, as a central station does, with the CR after
// the end block arriving on its own.
func TestReaderConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const n = 500
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		r := NewReader(c, 1<<16)
		for i := 0; ; i++ {
			msg, err := r.ReadMessage()
			if errors.Is(err, io.EOF) && i == n {
				done <- nil
				return
			}
			if err != nil {
				done <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			m, err := Parse(msg, Limits{})
			if err != nil {
				done <- err
				return
			}
			if err := WriteFrame(c, Acks(m, Reply{}, AckOptions{ControlID: "A"})[0]); err != nil {
				done <- err
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	acks := NewReader(c, 1<<16)
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("MSH|^~\\&|S|F|R|F|20240101||ORU^R01|C%d|P|2.6\rOBX|1|NM|x||%d\r", i, i)
		if i%2 == 0 {
			_, err = c.Write([]byte("\x0b" + msg + "\x1c"))
			if err == nil {
				_, err = c.Write([]byte("\r"))
			}
		} else {
			err = WriteFrame(c, []byte(msg))
		}
		if err != nil {
			t.Fatal(err)
		}
		a, err := acks.ReadMessage()
		if err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
		if want := fmt.Sprintf("MSA|AA|C%d\r", i); !strings.HasSuffix(string(a), want) {
			t.Fatalf("ack %d = %q", i, a)
		}
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestWriteFrameOneWrite(t *testing.T) {
	var w writeCounter
	if err := WriteFrame(&w, []byte("MSH|^~\\&\r")); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 || w.buf.String() != frame("MSH|^~\\&\r") {
		t.Errorf("%d writes of %q", w.writes, w.buf.String())
	}
}

type writeCounter struct {
	buf    bytes.Buffer
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}
