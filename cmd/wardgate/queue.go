package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wardgate/wardgate/edge/config"
)

const queueUsage = `Usage: wardgate queue -config FILE list
       wardgate queue -config FILE retry (-all | ID...)
       wardgate queue -config FILE drop  (-all | ID...)

Lists the dead letters of a running gateway (what could not be delivered or
decoded, and why), sends some or all of them to be delivered again, or drops
them. It talks to the gateway's API on http.listen; retry and drop need the
token of http.admin_token_file, which the command reads from the config.
`

func cmdQueue(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("queue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, queueUsage) }
	cfgPath := fs.String("config", "", "the gateway's config file")
	all := fs.Bool("all", false, "every dead letter")
	if err := fs.Parse(args); err != nil || *cfgPath == "" || fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	action, rest := fs.Arg(0), fs.Args()[1:]
	// Flags may also follow the action: queue -config F retry -all.
	if len(rest) > 0 && rest[0] == "-all" {
		*all, rest = true, rest[1:]
	}
	cfg, _, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	api := apiBase(cfg.HTTP.Listen)
	if cfg.HTTP.TLS != nil {
		api = "https" + strings.TrimPrefix(api, "http")
		if apiClient, err = pinnedClient(cfg.HTTP.TLS.CertFile); err != nil {
			fmt.Fprintln(stderr, "wardgate queue: http.tls:", err)
			return exitUsage
		}
	}
	switch action {
	case "list":
		if len(rest) > 0 || *all {
			fs.Usage()
			return exitUsage
		}
		return queueList(api, stdout, stderr)
	case "retry", "drop":
		var ids []uint64
		for _, a := range rest {
			id, err := strconv.ParseUint(a, 10, 64)
			if err != nil {
				fmt.Fprintf(stderr, "wardgate queue: %q is not a dead letter's id\n", a)
				return exitUsage
			}
			ids = append(ids, id)
		}
		if (len(ids) == 0) == !*all {
			fmt.Fprintln(stderr, "wardgate queue: give the ids of the dead letters, or -all")
			return exitUsage
		}
		if !cfg.HTTP.AdminTokenFile.Set() {
			fmt.Fprintln(stderr, "wardgate queue: retry and drop need http.admin_token_file in the config (the gateway refuses them without it)")
			return exitUsage
		}
		return queueAct(api, action, cfg.HTTP.AdminTokenFile.Value(), ids, *all, stdout, stderr)
	default:
		fs.Usage()
		return exitUsage
	}
}

// apiBase is the gateway's API as reached from this machine: a listener on
// every interface is reached on the loopback.
func apiBase(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

var apiClient = &http.Client{Timeout: 30 * time.Second}

// pinnedClient reaches a gateway that serves http.tls: it trusts exactly
// the certificate of cert_file, the one the gateway shows, whatever names
// it carries (the command reaches the gateway by its listen address).
func pinnedClient(certFile string) (*http.Client, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	want := blk.Bytes
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		// Verified below: the gateway's own certificate, byte for byte.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return fmt.Errorf("the gateway's certificate is not the one in %s", certFile)
			}
			return nil
		},
	}}}, nil
}

func notRunning(api string, err error, stderr io.Writer) int {
	var op *net.OpError
	if errors.As(err, &op) {
		fmt.Fprintf(stderr, "wardgate queue: no gateway answers at %s: is it running? (%v)\n", api, err)
	} else {
		fmt.Fprintf(stderr, "wardgate queue: %v\n", err)
	}
	return exitFailure
}

// deadLetter is one dead letter as the API lists it.
type deadLetter struct {
	ID       uint64    `json:"id,string"`
	Kind     string    `json:"kind"`
	Key      string    `json:"key"`
	Reason   string    `json:"reason"`
	Time     time.Time `json:"time"`
	Attempts int       `json:"attempts"`
}

func queueList(api string, stdout, stderr io.Writer) int {
	resp, err := apiClient.Get(api + "/api/dead-letters")
	if err != nil {
		return notRunning(api, err, stderr)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "wardgate queue: the gateway answered %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return exitFailure
	}
	var list struct {
		DeadLetters []deadLetter `json:"dead_letters"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		fmt.Fprintf(stderr, "wardgate queue: the gateway's answer is not a dead-letter list: %v\n", err)
		return exitFailure
	}
	if len(list.DeadLetters) == 0 {
		fmt.Fprintln(stdout, "no dead letters")
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tKEY\tSINCE\tATTEMPTS\tREASON")
	for _, d := range list.DeadLetters {
		reason := strings.Join(strings.Fields(d.Reason), " ")
		if len(reason) > 120 {
			reason = reason[:117] + "..."
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Kind, d.Key, d.Time.Local().Format("2006-01-02 15:04:05"), d.Attempts, reason)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d dead letter(s)\n", len(list.DeadLetters))
	return exitOK
}

func queueAct(api, action, token string, ids []uint64, all bool, stdout, stderr io.Writer) int {
	// Ids go as strings: those of dead letters added directly are ≥ 2^63.
	strIDs := make([]string, len(ids))
	for i, id := range ids {
		strIDs[i] = strconv.FormatUint(id, 10)
	}
	body, _ := json.Marshal(map[string]any{"ids": strIDs, "all": all})
	req, _ := http.NewRequest(http.MethodPost, api+"/api/dead-letters/"+action, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := apiClient.Do(req)
	if err != nil {
		return notRunning(api, err, stderr)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "wardgate queue: %s refused: %s %s\n", action, resp.Status, strings.TrimSpace(string(answer)))
		return exitFailure
	}
	fmt.Fprintln(stdout, strings.TrimSpace(string(answer)))
	return exitOK
}
