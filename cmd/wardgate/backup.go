package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wardgate/wardgate/edge"
	"github.com/wardgate/wardgate/edge/config"
)

const backupUsage = `Usage: wardgate backup -config FILE DIR

Copies the gateway's data folder (data_dir) into DIR, a new or empty folder,
consistently: the copy holds everything the gateway had acknowledged when
the backup began (readings, studies, what waits for the record, the beds'
patients, the devices' clocks), and opens as a data folder.

With the gateway running, the gateway makes the copy while it goes on
working (POST /api/backup on http.listen, with the token of
http.admin_token_file, which the command reads from the config); stopped,
the command copies the folder itself, holding its lock. Either way the copy
ends with wardgate-backup.json, listing every file with its size and
SHA-256, checked as the files are written; a folder without it is not a
backup.

To restore: stop the gateway, move data_dir aside, copy DIR in its place
(owned by the gateway's user), start. The gateway then holds what it held
at the backup: what devices, modalities or the ADT feed were told was
stored after it is not in the copy.
`

func cmdBackup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, backupUsage) }
	cfgPath := fs.String("config", "", "the gateway's config file")
	if err := fs.Parse(args); err != nil || *cfgPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	cfg, _, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	dir := fs.Arg(0)
	d, err := edge.NewDirWriter(dir)
	if err != nil {
		fmt.Fprintln(stderr, "wardgate backup:", err)
		return exitUsage
	}
	start := time.Now()
	m, err := edge.BackupStopped(cfg, d)
	switch {
	case errors.Is(err, edge.ErrGatewayRunning):
		err = backupRunning(cfg, d)
		if d.Manifest != nil {
			m = *d.Manifest
		}
	case err == nil && d.Manifest == nil:
		err = errors.New("the manifest was not written")
	}
	if err != nil {
		fmt.Fprintf(stderr, "wardgate backup: %v\n", err)
		fmt.Fprintf(stderr, "wardgate backup: %s holds an incomplete copy (no %s): remove it\n", dir, edge.BackupManifestName)
		return exitFailure
	}
	var bytes int64
	for _, f := range m.Files {
		bytes += f.Size
	}
	how := "stopped gateway"
	if m.Running {
		how = "running gateway"
	}
	fmt.Fprintf(stdout, "backup of %s (%s, %s) taken %s: %d files, %d bytes, in %s, checked against %s\n",
		m.Site, how, m.Wardgate, m.Taken.Format(time.RFC3339), len(m.Files), bytes,
		time.Since(start).Round(time.Millisecond), edge.BackupManifestName)
	return exitOK
}

// backupRunning asks the running gateway for the copy.
func backupRunning(cfg *config.Config, d *edge.DirWriter) error {
	if !cfg.HTTP.AdminTokenFile.Set() {
		return errors.New("the gateway is running, and a backup of a running gateway needs http.admin_token_file in the config (it holds patient data); or stop the gateway and run the backup again")
	}
	api := apiBase(cfg.HTTP.Listen)
	client := &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: time.Minute}}
	if cfg.HTTP.TLS != nil {
		api = "https" + strings.TrimPrefix(api, "http")
		pinned, err := pinnedClient(cfg.HTTP.TLS.CertFile)
		if err != nil {
			return fmt.Errorf("http.tls: %w", err)
		}
		t := pinned.Transport.(*http.Transport)
		t.ResponseHeaderTimeout = time.Minute
		client = &http.Client{Transport: t} // no overall timeout: a spool takes its time
	}
	req, _ := http.NewRequest(http.MethodPost, api+"/api/backup", nil)
	req.Header.Set("Authorization", "Bearer "+cfg.HTTP.AdminTokenFile.Value())
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("the data folder is in use, but no gateway answers at %s: %v", api, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return fmt.Errorf("the gateway refused: %s %s", resp.Status, strings.TrimSpace(string(answer)))
	}
	return edge.ReadBackupTar(resp.Body, d)
}
