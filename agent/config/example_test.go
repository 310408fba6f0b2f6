package config_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/iadsafe/iad-agent/agent/config"
)

// Back up the live configuration before an upgrade, then restore it.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "config-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := config.Open(ctx, config.Options{Root: filepath.Join(dir, "config-store")})
	if err != nil {
		log.Fatal(err)
	}
	before, err := store.Digest()
	if err != nil {
		log.Fatal(err)
	}

	// Backup: in the agent the writer is the FTP/TFTP upload.
	var archive bytes.Buffer
	_, m, err := store.Backup(ctx, &archive, config.BackupMeta{SoftwareVersion: "2.1.0", ConfigFormat: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("files backed up:", len(m.Files))

	// Restore: the reader is the download, verified before anything is live.
	staged, err := store.Stage(ctx, &archive)
	if err != nil {
		log.Fatal(err)
	}
	if err := staged.Apply(ctx); err != nil {
		log.Fatal(err)
	}
	after, err := store.Digest()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("restored whole:", before == after)

	data, err := os.ReadFile(filepath.Join(store.LiveDir(), "protocol.conf"))
	if err != nil {
		log.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	fmt.Println(first)
	// Output:
	// files backed up: 4
	// restored whole: true
	// format-version = 1
}
