package server

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

type failingWriter struct{ after int64 }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk full")
	}
	n := min(int64(len(p)), w.after)
	w.after -= n
	if n < int64(len(p)) {
		return int(n), errors.New("disk full")
	}
	return len(p), nil
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// copyBody copies everything, stops on the writer's error and on the
// reader's, and never hangs.
func TestCopyBody(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 6*copyBufSize/16+7)
	run := func(name string, dst io.Writer, src io.Reader) (int64, error) {
		t.Helper()
		type result struct {
			n   int64
			err error
		}
		ch := make(chan result, 1)
		go func() { n, err := copyBody(dst, src); ch <- result{n, err} }()
		select {
		case r := <-ch:
			return r.n, r.err
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: copyBody hangs", name)
			return 0, nil
		}
	}
	var out bytes.Buffer
	if n, err := run("whole", &out, bytes.NewReader(data)); err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("whole copy: %d bytes, %v", n, err)
	}
	if n, err := run("writer fails", &failingWriter{after: int64(copyBufSize) * 2}, bytes.NewReader(data)); err == nil || n != int64(copyBufSize)*2 {
		t.Fatalf("failing writer: %d bytes, %v", n, err)
	}
	if n, err := run("writer fails at once", &failingWriter{}, bytes.NewReader(data)); err == nil || n != 0 {
		t.Fatalf("writer failing at once: %d bytes, %v", n, err)
	}
	out.Reset()
	if n, err := run("reader fails", &out, &failingReader{bytes.NewReader(data), io.ErrUnexpectedEOF}); !errors.Is(err, io.ErrUnexpectedEOF) || n != int64(len(data)) {
		t.Fatalf("failing reader: %d bytes, %v", n, err)
	}
	if n, err := run("empty", &out, bytes.NewReader(nil)); err != nil || n != 0 {
		t.Fatalf("empty: %d, %v", n, err)
	}
}
