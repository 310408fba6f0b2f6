// Command crashagent is the "bad software" of the device VM tests: the
// agent binary of version 3.0.0 in its bank crashes at start (a nil map
// write, as a broken build might), so the start-up script restarts the
// device on every boot until the boot selector has spent the trial's
// tries and returns to the previous bank. It is test firmware only and
// must never be shipped.
package main

import (
	"fmt"
	"os"
)

var version = "3.0.0"

func main() {
	fmt.Fprintf(os.Stderr, "iad-agent %s starting\n", version)
	var registry map[string]int
	registry["iadSwCurrentVersion"]++ // panics: assignment to entry in nil map
}
