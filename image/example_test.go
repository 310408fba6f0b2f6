package image_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/iadsafe/iad-agent/image"
)

// exampleKey is fixed so the output below is stable. Real keys come from
// image.GenerateKey and live in files.
var exampleKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{42}, ed25519.SeedSize))

func ExampleBuild() {
	payload := "root filesystem bytes"

	// Pass one: the header carries the payload's size and hash.
	size, sum, err := image.HashPayload(strings.NewReader(payload))
	if err != nil {
		log.Fatal(err)
	}
	h := image.Header{
		Hardware:      "iad-arm-v1",
		Version:       "2.1.0",
		ConfigFormat:  1,
		PayloadSize:   size,
		PayloadSHA256: sum,
		Created:       time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	// Pass two: header, signature, payload.
	var img bytes.Buffer
	if err := image.Build(&img, h, strings.NewReader(payload), exampleKey); err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Len() == image.PayloadOffset+len(payload))
	// Output: true
}

func ExampleNewReader() {
	img := exampleImage("new kernel and rootfs")

	r, err := image.NewReader(bytes.NewReader(img), image.Options{
		Trusted:    []ed25519.PublicKey{exampleKey.Public().(ed25519.PublicKey)},
		Hardware:   "iad-arm-v1",
		MaxPayload: 64 << 20,
	})
	if err != nil {
		log.Fatal(err) // rejected from the header alone
	}
	h := r.Header()
	fmt.Println(h.Hardware, h.Version, h.PayloadSize)

	// Stream into the inactive bank; it is valid only once Read says io.EOF.
	var bank bytes.Buffer
	if _, err := io.Copy(&bank, r); err != nil {
		log.Fatal(err)
	}
	fmt.Println(bank.String())
	// Output:
	// iad-arm-v1 2.1.0 21
	// new kernel and rootfs
}

func exampleImage(payload string) []byte {
	size, sum, _ := image.HashPayload(strings.NewReader(payload))
	var img bytes.Buffer
	h := image.Header{Hardware: "iad-arm-v1", Version: "2.1.0", PayloadSize: size, PayloadSHA256: sum}
	if err := image.Build(&img, h, strings.NewReader(payload), exampleKey); err != nil {
		log.Fatal(err)
	}
	return img.Bytes()
}
