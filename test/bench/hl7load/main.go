// Command hl7load drives an HL7 listener with IHE PCD-01 results from a
// simulated central station (devices/sim/hl7sim) and prints what it got:
// messages acknowledged per second and the ACK latency (from the write of
// a message to its acknowledgement) at p50 and p99.
//
//	hl7load -addr 127.0.0.1:2575 [-messages 20000] [-connections 8] [-obx 20] [-rate 0]
//
// With -rate 0 every connection sends its next message as soon as the last
// one is acknowledged (throughput); with -rate N the messages leave at N
// per second in all, on the same connections (latency at a given load).
// The messages are written before the clock starts. Exit 1 when any
// message was refused or not acknowledged.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/devices/sim/hl7sim"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2575", "the HL7 listener, HOST:PORT")
	messages := flag.Int("messages", 20000, "messages to send")
	conns := flag.Int("connections", 8, "connections, one message in flight on each")
	obx := flag.Int("obx", 20, "OBX rows per message (hierarchy rows pad a result to this)")
	rate := flag.Float64("rate", 0, "messages per second in all (0: each connection as fast as its ACKs come)")
	beds := flag.Int("beds", 64, "beds of the simulated ward")
	authority := flag.String("authority", "HOSP", "PID-3 assigning authority")
	runID := flag.String("run-id", "", "control id prefix (default: from the clock)")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if *runID == "" {
		*runID = fmt.Sprintf("L%07X", time.Now().UnixNano()&0xFFFFFFF)
	}
	st, err := hl7sim.New(hl7sim.Config{Beds: *beds, Authority: *authority, MinOBX: *obx, Seed: uint64(time.Now().UnixNano()), RunID: *runID})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hl7load:", err)
		os.Exit(2)
	}
	st.Occupy()
	// One cycle a second of simulated time, ending now: every reading is
	// of the past and has its own time.
	cycles := *messages / *beds + 2
	start := time.Now().Add(-time.Duration(cycles) * time.Second).Truncate(time.Second)
	all := make([][]byte, 0, *messages)
	for c := 0; len(all) < *messages; c++ {
		for _, m := range st.Results(start.Add(time.Duration(c) * time.Second)) {
			if len(all) < *messages {
				all = append(all, m.Bytes)
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := &hl7sim.Client{Addr: *addr, Connections: *conns}
	defer client.Close()

	work := make(chan []byte, *conns)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range *conns {
		wg.Go(func() {
			for m := range work {
				if err := client.Send(ctx, m); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	t0 := time.Now()
	var tick *time.Ticker
	if *rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / *rate))
		defer tick.Stop()
	}
feed:
	for _, m := range all {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				break feed
			}
		}
		select {
		case work <- m:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(t0)
	s := client.Stats()
	lat := client.Latencies()
	mode := "each connection waiting for its ACK"
	if *rate > 0 {
		mode = fmt.Sprintf("offered at %.0f msg/s", *rate)
	}
	fmt.Printf("%d messages of %d OBX on %d connections, %s: %d acknowledged in %.2f s = %.0f msg/s; ACK latency p50 %s p99 %s max %s; retried %d (busy %d), rejected %d, unacknowledged %d, reconnects %d\n",
		len(all), *obx, *conns, mode, s.Acked, elapsed.Seconds(), float64(s.Acked)/elapsed.Seconds(),
		hl7sim.Percentile(lat, 50).Round(10*time.Microsecond), hl7sim.Percentile(lat, 99).Round(10*time.Microsecond),
		hl7sim.Percentile(lat, 100).Round(10*time.Microsecond), s.Retried, s.Busy, s.Rejected, s.Unacked, s.Lost)
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "hl7load: %d messages not delivered; the first: %v\n", len(errs), errs[0])
		os.Exit(1)
	}
}
