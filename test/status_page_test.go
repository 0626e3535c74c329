package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// artifactDir is where tests leave what a person may want to look at
// (screenshots): $WARDGATE_ARTIFACTS, or test/artifacts.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("WARDGATE_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// pageState is what the test reads off the status page.
type pageState struct {
	Monitors   int  `json:"monitors"`
	Connected  int  `json:"connected"`
	Values     int  `json:"values"`
	Charted    int  `json:"charted"`
	HasDICOM   bool `json:"dicom"`
	HasHL7     bool `json:"hl7"`
	HL7Beds    int  `json:"hl7Beds"`
	ADTApplied int  `json:"adtApplied"`
}

// demoHL7Beds are the demo central station's beds, as its bed template
// makes them of PV1-3 (the page probe names them too).
var demoHL7Beds = []string{"WARD4B-BED16", "WARD4B-BED18"}

// demoAPIStatus is what the test reads of /api/status about the demo's
// central station, its ADT feed and delivery.
type demoAPIStatus struct {
	HL7 struct {
		Refused int `json:"refused"`
		Beds    []struct {
			Bed      string `json:"bed"`
			Readings int    `json:"readings"`
		} `json:"beds"`
	} `json:"hl7"`
	ADT struct {
		EventsRefused int `json:"events_refused"`
	} `json:"adt"`
	FHIR struct {
		Delivered    int `json:"delivered"`
		DeadLettered int `json:"dead_lettered"`
	} `json:"fhir"`
	Ingest struct {
		Entries int `json:"entries_stored"`
	} `json:"ingest"`
	Outbox struct {
		Waiting  int `json:"waiting"`
		InFlight int `json:"in_flight"`
		Held     struct {
			Reasons []struct {
				Reason string `json:"reason"`
			} `json:"reasons"`
		} `json:"held"`
	} `json:"outbox"`
}

// With `wardgate demo` running, the status page in headless Chromium shows
// the three simulated monitors (serial, MQTT, an IntelliVue over UDP)
// connected with values, the simulated study in the
// chart, the central station's two beds under hl7 and the admissions of
// the ADT feed, and no console errors; a screenshot is kept. The values of
// the central station's beds are charted: none waits for its patient, and
// everything the gateway stored reaches the record.
func TestStatusPageInChromium(t *testing.T) {
	RequirePeers(t, "chromium")
	chromium, _ := exec.LookPath("chromium")
	demo := Start(t, "demo", "-listen", "127.0.0.1:0")
	addr := demo.WaitLog(t, statusRe, 60*time.Second)
	url := "http://" + addr + "/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.Flag("headless", "new"),
		chromedp.WindowSize(1280, 1400),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	defer cancelTimeout()

	var mu sync.Mutex
	var consoleErrors []string
	chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				consoleErrors = append(consoleErrors, "console.error: "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			consoleErrors = append(consoleErrors, "exception: "+e.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if e.Entry.Level == log.EntryLevelError {
				consoleErrors = append(consoleErrors, "log: "+e.Entry.Text+" "+e.Entry.URL)
			}
		}
	})
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("Chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("Chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("Chromium could not open %s: %v", url, err)
	}

	// The page refreshes itself; within a minute of the demo's start it
	// must show everything flowing.
	var state pageState
	const probe = `({
		monitors: document.querySelectorAll('tr.monitor').length,
		connected: document.querySelectorAll('tr.monitor[data-state="connected"]').length,
		values: document.querySelectorAll('tr.monitor .value[data-code]').length,
		charted: document.querySelectorAll('tr.study[data-charted="true"]').length,
		dicom: !!document.querySelector('section#dicom[data-configured="true"]'),
		hl7: !!document.querySelector('section#hl7[data-configured="true"]'),
		hl7Beds: document.querySelectorAll('section#hl7 tr.hl7-bed:is([data-bed="WARD4B-BED16"], [data-bed="WARD4B-BED18"])').length,
		adtApplied: Number(document.querySelector('section#adt[data-configured="true"]')?.dataset.applied ?? 0),
	})`
	deadline := time.Now().Add(75 * time.Second)
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](probe))
		if err != nil {
			t.Fatalf("evaluating the page: %v", err)
		}
		state = got
		if state.Monitors == 3 && state.Connected == 3 && state.Values >= 8 && state.Charted >= 1 && state.HasDICOM &&
			state.HasHL7 && state.HL7Beds == len(demoHL7Beds) && state.ADTApplied >= 2 {
			break
		}
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("the page does not show everything flowing: %+v\n%s\n%s", state, html, demo.Log())
		}
		time.Sleep(time.Second)
	}
	// The central station's values are charted for the patients the ADT
	// feed placed in their beds: each bed's values are taken, nothing is
	// refused, and at some moment everything the gateway stored has
	// reached the record while no value of those beds waits for a patient
	// (a held value's reason names its bed). hl7.messages_held is not
	// asked: it counts a message during which any frame was held, and the
	// demo's bed-12 and bed-14 frames wait for their lookups now and then.
	var api demoAPIStatus
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, body := getBody(t, "http://"+addr+"/api/status")
		if code != 200 {
			t.Fatalf("/api/status: %d %s", code, body)
		}
		api = demoAPIStatus{}
		if err := json.Unmarshal(body, &api); err != nil {
			t.Fatalf("/api/status: %v", err)
		}
		readings := map[string]int{}
		for _, b := range api.HL7.Beds {
			readings[b.Bed] = b.Readings
		}
		for _, bed := range demoHL7Beds {
			if readings[bed] == 0 {
				t.Fatalf("/api/status: no value taken from %s: %s", bed, body)
			}
		}
		if api.HL7.Refused > 0 || api.ADT.EventsRefused > 0 || api.FHIR.DeadLettered > 0 {
			t.Fatalf("/api/status: the central station's values or events were refused: %s\n%s", body, demo.Log())
		}
		waiting := false
		for _, r := range api.Outbox.Held.Reasons {
			for _, bed := range demoHL7Beds {
				waiting = waiting || strings.Contains(r.Reason, bed)
			}
		}
		// Everything stored has reached the record when nothing waits in
		// the outbox (delivered and entries_stored differ by the entries
		// queued twice and sent once: a monitor's Device in two frames of
		// one answer).
		if !waiting && api.Ingest.Entries > 0 && api.FHIR.Delivered > 0 && api.Outbox.Waiting == 0 && api.Outbox.InFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/status: the central station's values wait for their patient, or what was stored never all reached the record: %s\n%s", body, demo.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Reload once more so the screenshot and the console cover a fresh
	// render, then keep the screenshot.
	if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("tr.monitor"))); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifactDir(t), "status-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes); page state %+v; %d entries delivered", shot, len(png), state, api.FHIR.Delivered)
	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) > 0 {
		t.Fatalf("console errors:\n%s", strings.Join(consoleErrors, "\n"))
	}

	demo.Cmd.Process.Signal(syscall.SIGINT)
	if code := demo.Wait(t, 40*time.Second); code != 0 {
		t.Fatalf("demo exit %d", code)
	}

}

// getBody is a GET's status and body.
func getBody(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, body
}
