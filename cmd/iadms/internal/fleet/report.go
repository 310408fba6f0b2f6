package fleet

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
)

// Report is the outcome of a rollout (or of one device's upgrade).
type Report struct {
	Started    time.Time      `json:"started"`
	Ended      time.Time      `json:"ended"`
	Seconds    float64        `json:"seconds"`
	Total      int            `json:"total"`
	Succeeded  int            `json:"succeeded"`
	Failed     int            `json:"failed"`
	Skipped    int            `json:"skipped"`
	Halted     bool           `json:"halted"`
	HaltReason string         `json:"haltReason,omitempty"`
	Devices    []DeviceReport `json:"devices"`
}

// DeviceReport is one device's line.
type DeviceReport struct {
	Name       string       `json:"name"`
	Address    string       `json:"address"`
	Status     string       `json:"status"`
	OldVersion string       `json:"oldVersion,omitempty"`
	NewVersion string       `json:"newVersion,omitempty"`
	Target     string       `json:"targetVersion,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	Seconds    float64      `json:"seconds"`
	Resumed    int          `json:"resumed,omitempty"`
	Steps      []StepReport `json:"steps,omitempty"`
}

// StepReport summarises the attempts at one step.
type StepReport struct {
	Step     string   `json:"step"`
	Attempts int      `json:"attempts"`
	OK       bool     `json:"ok"`
	Cause    string   `json:"cause,omitempty"`
	Seconds  float64  `json:"seconds"`
	Failures []string `json:"failures,omitempty"`
}

// Statuses beyond journal.Status that a report shows.
const (
	StatusSkipped = "skipped" // never started: the rollout halted first
	StatusError   = "error"   // iadms could not reach a verdict
)

// tableSteps are the columns of the table, in the method's order.
var tableSteps = []journal.Step{journal.StepBackup, journal.StepUpgrade, journal.StepReset, journal.StepBoot, journal.StepCommit, journal.StepRestore}

// DeviceFromRun summarises a journal record.
func DeviceFromRun(r journal.Run) DeviceReport {
	d := DeviceReport{
		Name: r.Device, Address: r.Address, Status: string(r.Status), Reason: r.Reason,
		Target: r.Image.Version, NewVersion: r.FinalVersion, Resumed: r.Resumed,
	}
	if r.Baseline != nil {
		d.OldVersion = r.Baseline.Version
	}
	end := r.Finished
	if end.IsZero() {
		end = r.Updated
	}
	if !r.Started.IsZero() {
		d.Seconds = secs(end.Sub(r.Started))
	}
	idx := map[journal.Step]int{}
	for _, res := range r.Results {
		i, ok := idx[res.Step]
		if !ok {
			i = len(d.Steps)
			idx[res.Step] = i
			d.Steps = append(d.Steps, StepReport{Step: string(res.Step)})
		}
		s := &d.Steps[i]
		s.Attempts++
		s.Seconds = secs(time.Duration(s.Seconds*float64(time.Second)) + res.Duration())
		s.OK, s.Cause = res.OK, res.Cause
		if !res.OK {
			s.Failures = append(s.Failures, res.Cause+": "+res.Text)
		}
	}
	return d
}

// Build makes the report of a rollout.
func Build(targets []Target, outs []*Outcome, halt string, started, ended time.Time) Report {
	rep := Report{Started: started, Ended: ended, Seconds: secs(ended.Sub(started)), Total: len(targets), Halted: halt != "", HaltReason: halt}
	for i, t := range targets {
		var d DeviceReport
		switch o := outs[i]; {
		case o == nil:
			d = DeviceReport{Name: t.Name, Address: t.Addr.String(), Status: StatusSkipped, Reason: "not started: " + halt}
			rep.Skipped++
		default:
			d = DeviceFromRun(o.Run)
			d.Name, d.Address = t.Name, t.Addr.String()
			if o.Err != nil {
				d.Status, d.Reason = StatusError, o.Err.Error()
			}
			if o.failed() {
				rep.Failed++
			} else {
				rep.Succeeded++
			}
		}
		rep.Devices = append(rep.Devices, d)
	}
	return rep
}

// secs is d in seconds, to the millisecond.
func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a table, one device per line, then a
// summary line.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"DEVICE", "ADDRESS", "STATUS", "VERSION"}
	for _, s := range tableSteps {
		head = append(head, strings.ToUpper(string(s)))
	}
	head = append(head, "TIME", "REASON")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, d := range r.Devices {
		ver := "-"
		if d.OldVersion != "" || d.NewVersion != "" {
			ver = orDash(d.OldVersion) + " -> " + orDash(d.NewVersion)
		}
		cells := []string{d.Name, d.Address, d.Status, ver}
		for _, s := range tableSteps {
			cells = append(cells, d.stepCell(s))
		}
		t := "-"
		if d.Seconds > 0 {
			t = (time.Duration(d.Seconds * float64(time.Second))).Round(100 * time.Millisecond).String()
		}
		cells = append(cells, t, oneLine(d.Reason))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d devices: %d succeeded, %d failed, %d skipped in %s\n",
		r.Total, r.Succeeded, r.Failed, r.Skipped, time.Duration(r.Seconds*float64(time.Second)).Round(100*time.Millisecond))
	if err == nil && r.Halted {
		_, err = fmt.Fprintf(w, "HALTED: %s\n", r.HaltReason)
	}
	return err
}

// stepCell is "ok", "ok(2)" after retries, "FAIL:cause", or "-".
func (d DeviceReport) stepCell(s journal.Step) string {
	for _, st := range d.Steps {
		if st.Step != string(s) {
			continue
		}
		cell := "ok"
		if !st.OK {
			cell = "FAIL:" + st.Cause
		}
		if st.Attempts > 1 {
			cell += fmt.Sprintf("(%d)", st.Attempts)
		}
		return cell
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
