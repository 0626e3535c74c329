package test

import (
	"context"
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
	Monitors  int  `json:"monitors"`
	Connected int  `json:"connected"`
	Values    int  `json:"values"`
	Charted   int  `json:"charted"`
	HasDICOM  bool `json:"dicom"`
}

// With `wardgate demo` running, the status page in headless Chromium shows
// both simulated monitors connected with values, the simulated study in the
// chart, and no console errors; a screenshot is kept.
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
	})`
	deadline := time.Now().Add(75 * time.Second)
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](probe))
		if err != nil {
			t.Fatalf("evaluating the page: %v", err)
		}
		state = got
		if state.Monitors == 2 && state.Connected == 2 && state.Values >= 4 && state.Charted >= 1 && state.HasDICOM {
			break
		}
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("the page does not show everything flowing: %+v\n%s\n%s", state, html, demo.Log())
		}
		time.Sleep(time.Second)
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
	t.Logf("screenshot: %s (%d bytes); page state %+v", shot, len(png), state)
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
