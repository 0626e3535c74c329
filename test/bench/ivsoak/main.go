// Command ivsoak is the IntelliVue soak of issue 14: N simulated IntelliVue
// monitors on loopback UDP (devices/sim/intellivuesim), each answering a
// running wardgate's Data Export session with its numerics every second,
// for a duration; it writes the gateway's monitors section (-config) and,
// at the end, compares what the monitors sent with what the gateway
// counted (readings stored, dropped, lost) and samples the gateway's CPU
// and RSS from /proc while it runs.
//
//	ivsoak -n 32 -config monitors.yaml            # writes the config, then exits
//	ivsoak -n 32 -base PORT -pid PID -status ADDR -for 10m
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/devices/sim/intellivuesim"
)

func main() {
	n := flag.Int("n", 32, "monitors")
	base := flag.Int("base", 0, "first UDP port (the monitors use base … base+n-1)")
	cfg := flag.String("config", "", "write the gateway's monitors and patients sections here, and exit")
	pid := flag.Int("pid", 0, "the gateway's process, for CPU and RSS")
	status := flag.String("status", "", "the gateway's http address, for /api/status")
	dur := flag.Duration("for", 10*time.Minute, "how long")
	flag.Parse()
	if *cfg != "" {
		var b strings.Builder
		b.WriteString("monitors:\n")
		for i := range *n {
			fmt.Fprintf(&b, "  - {id: iv-%02d, location: icu-%02d, profile: philips/intellivue-mx, udp: {host: 127.0.0.1, port: %d}, time_zone: UTC}\n", i, i, *base+i)
		}
		b.WriteString("patients:\n  static:\n")
		for i := range *n {
			fmt.Fprintf(&b, "    icu-%02d: Patient/soak-%02d\n", i, i)
		}
		if err := os.WriteFile(*cfg, []byte(b.String()), 0o600); err != nil {
			fail(err)
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mons := make([]*intellivuesim.Monitor, *n)
	for i := range *n {
		mons[i] = intellivuesim.New(intellivuesim.Config{Location: time.UTC, ClockSkew: time.Duration(i) * time.Second,
			Model: "MX450", Manufacturer: "Philips", Serial: fmt.Sprintf("SOAK%06d", i), Software: "M.00.03", Logger: quiet})
		addr := fmt.Sprintf("127.0.0.1:%d", *base+i)
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			fail(err)
		}
		go mons[i].Serve(ctx, pc.(*net.UDPConn))
	}
	start := time.Now()
	cpu0 := cpuTicks(*pid)
	var rssMax, rssSum, anonMax, samples int
	tick := time.NewTicker(10 * time.Second)
	for time.Since(start) < *dur {
		<-tick.C
		r, anon := rss(*pid, "VmRSS:"), rss(*pid, "RssAnon:")
		rssMax, anonMax = max(rssMax, r), max(anonMax, anon)
		rssSum += r
		samples++
		fmt.Fprintf(os.Stderr, "%4.0fs: RSS %.1f MiB (anonymous %.1f MiB)\n", time.Since(start).Seconds(), float64(r)/1024, float64(anon)/1024)
	}
	elapsed := time.Since(start)
	cpu := float64(cpuTicks(*pid)-cpu0) / 100 // USER_HZ
	var answers, numerics int
	for _, m := range mons {
		st := m.Stats()
		answers += st.Answers
	}
	numerics = answers * 5 // HR, SpO2, pulse, RR, temperature in every answer (the NIBP comes once a cuff)
	var s struct {
		Monitors []struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			Counters struct {
				Frames, Readings, Dropped, Lost, BadFrames int
			} `json:"counters"`
		} `json:"monitors"`
		Outbox struct {
			Waiting int `json:"waiting"`
		} `json:"outbox"`
		Errors map[string]int `json:"errors"`
	}
	resp, err := http.Get("http://" + *status + "/api/status")
	if err != nil {
		fail(err)
	}
	json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	var frames, readings, dropped, lost, connected int
	for _, m := range s.Monitors {
		frames += m.Counters.Frames
		readings += m.Counters.Readings
		dropped += m.Counters.Dropped
		lost += m.Counters.Lost
		if m.State == "connected" {
			connected++
		}
	}
	fmt.Printf("%d IntelliVue monitors on loopback UDP, numerics every second, for %s:\n", *n, elapsed.Round(time.Second))
	fmt.Printf("  the monitors sent %d answers; the gateway took %d frames (%d connected at the end)\n", answers, frames, connected)
	fmt.Printf("  readings stored %d (%.0f/s), dropped %d, lost %d; outbox waiting %d items; readings_lost %d\n",
		readings, float64(readings)/elapsed.Seconds(), dropped, lost, s.Outbox.Waiting, s.Errors["readings_lost"])
	fmt.Printf("  gateway CPU %.1f s over %.0f s = %.1f%% of one core; RSS mean %.1f MiB, max %.1f MiB, of which anonymous at most %.1f MiB (the rest is the outbox's mapped file, growing with what waits for the unreachable record)\n",
		cpu, elapsed.Seconds(), 100*cpu/elapsed.Seconds(), float64(rssSum)/float64(max(samples, 1))/1024, float64(rssMax)/1024, float64(anonMax)/1024)
	if lost > 0 || s.Errors["readings_lost"] > 0 || frames < answers-*n*2 {
		fmt.Printf("  NOT every reading was committed (answers %d, frames %d, lost %d)\n", answers, frames, lost)
		os.Exit(1)
	}
	_ = numerics
}

// cpuTicks is the process's user+system time in clock ticks.
func cpuTicks(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		fail(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// rss is one of the process's resident-set figures (VmRSS:, RssAnon:) in
// KiB.
func rss(pid int, field string) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		fail(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			v, _ := strconv.Atoi(strings.Fields(line)[1])
			return v
		}
	}
	return 0
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ivsoak:", err)
	os.Exit(1)
}
