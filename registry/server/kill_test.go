package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// serveEnv, set in a re-executed test binary, makes it a registry server
// on the root it names (see TestMain), so a test can SIGKILL a server.
const serveEnv = "BERTH_REGISTRY_TEST_SERVE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(serveEnv); spec != "" {
		root, addr, _ := strings.Cut(spec, "|")
		os.Exit(serveForever(root, addr))
	}
	os.Exit(m.Run())
}

func serveForever(root, addr string) int {
	s, err := New(Config{Root: root, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := Serve(context.Background(), s, ln, ServeOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild runs a registry server in a child process on root and waits
// until it answers.
func startChild(t *testing.T, root string) (*exec.Cmd, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+root+"|"+addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return cmd, "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("child registry not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A server killed with SIGKILL in the middle of a chunk keeps every
// committed blob, and the upload resumes from what reached the disk.
func TestKilledServerResumesUpload(t *testing.T) {
	root := t.TempDir()
	child, base := startChild(t, root)
	tr := &testRegistry{t: t, url: base}
	committed := bytes.Repeat([]byte("committed "), 100000)
	cd := tr.pushBlob("kill", committed)

	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i % 251)
	}
	d := digest.FromBytes(data)
	loc := tr.do("POST", "/v2/kill/blobs/uploads/", nil).Header.Get("Location")
	tr.do("PATCH", loc, data[:1<<20], "Content-Range", "0-"+strconv.Itoa(1<<20-1)).expect(t, "PATCH 1", http.StatusAccepted)

	// A second chunk, sent halfway, when the server dies.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PATCH", base+loc, pr)
	req.ContentLength = 2 << 20
	req.Header.Set("Content-Range", strconv.Itoa(1<<20)+"-"+strconv.Itoa(3<<20-1))
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the killed server answered %s", resp.Status)
		}
		done <- err
	}()
	if _, err := pw.Write(data[1<<20 : 1<<20+(1<<19)]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	pw.CloseWithError(io.ErrClosedPipe)
	if err := <-done; err == nil {
		t.Fatal("the PATCH to a killed server succeeded")
	}

	_, base2 := startChild(t, root)
	tr2 := &testRegistry{t: t, url: base2}
	if r := tr2.do("GET", "/v2/kill/blobs/"+cd.String(), nil); !bytes.Equal(r.Body, committed) {
		t.Fatalf("committed blob after SIGKILL: %d bytes, status %d", len(r.Body), r.Status)
	}
	r := tr2.do("GET", loc, nil)
	r.expect(t, "upload status after SIGKILL", http.StatusNoContent)
	end, err := strconv.Atoi(strings.TrimPrefix(r.Header.Get("Range"), "0-"))
	if err != nil {
		t.Fatalf("Range %q", r.Header.Get("Range"))
	}
	off := end + 1
	if off < 1<<20 || off > 1<<20+1<<19 {
		t.Fatalf("upload holds %d bytes after SIGKILL, want between %d and %d", off, 1<<20, 1<<20+1<<19)
	}
	tr2.do("HEAD", "/v2/kill/blobs/"+d.String(), nil).expect(t, "HEAD unfinished blob", http.StatusNotFound)
	tr2.do("PATCH", loc, data[off:], "Content-Range", strconv.Itoa(off)+"-"+strconv.Itoa(len(data)-1)).expect(t, "PATCH rest", http.StatusAccepted)
	tr2.do("PUT", loc+"?digest="+d.String(), nil).expect(t, "PUT", http.StatusCreated)
	if r := tr2.do("GET", "/v2/kill/blobs/"+d.String(), nil); !bytes.Equal(r.Body, data) {
		t.Fatalf("resumed blob differs (%d bytes)", len(r.Body))
	}
}
