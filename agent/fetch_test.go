package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/iadsafe/iad-agent/agent/journal"
	"github.com/iadsafe/iad-agent/agent/notify"
	"github.com/iadsafe/iad-agent/mib"
)

// tftpServe serves data as any file name from an in-process TFTP server
// on a free loopback port.
func tftpServe(t *testing.T, data []byte) uint16 {
	t.Helper()
	s := tftp.NewServer(func(_ string, rf io.ReaderFrom) error {
		_, err := rf.ReadFrom(bytes.NewReader(data))
		return err
	}, nil)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(conn)
	t.Cleanup(s.Shutdown)
	return uint16(conn.LocalAddr().(*net.UDPAddr).Port)
}

func fetchRig(t *testing.T, port uint16) (*Agent, *row) {
	t.Helper()
	n, err := notify.New(notify.Options{Uptime: func() uint32 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{log: slog.New(slog.DiscardHandler), notify: n, rows: map[uint32]*row{},
		opts: Options{TFTPBlockSize: 1468}}
	r := &row{Op: journal.Op{Index: 1, Protocol: mib.ProtocolTFTP, AddrType: mib.InetIPv4,
		Addr: []byte{127, 0, 0, 1}, Port: port, File: "f", Timeout: 10}}
	return a, r
}

// TestFetchStreamsWhole: the consumer sees every byte of the file, in
// order, through the spool.
func TestFetchStreamsWhole(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<16+5) // 3 MiB + 80 bytes
	a, r := fetchRig(t, tftpServe(t, data))
	var got []byte
	err := a.fetch(t.Context(), r, func(_ context.Context, src io.Reader) (err error) {
		got, err = io.ReadAll(src)
		return err
	})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetch: %v, got %d bytes, want the %d served", err, len(got), len(data))
	}
}

// TestFetchConsumerStopsEarly: a consumer that returns before the end
// must not leave the download blocked on a full spool; fetch fails.
func TestFetchConsumerStopsEarly(t *testing.T) {
	data := make([]byte, 4*spoolSize)
	a, r := fetchRig(t, tftpServe(t, data))
	done := make(chan error, 1)
	go func() {
		done <- a.fetch(t.Context(), r, func(_ context.Context, src io.Reader) error {
			_, err := io.ReadFull(src, make([]byte, 1000))
			return err
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errUnread) {
			t.Fatalf("fetch: %v, want errUnread", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("fetch still blocked a minute after its consumer returned")
	}
}
