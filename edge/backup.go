package edge

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/edge/build"
	"github.com/wardgate/wardgate/edge/config"
)

// Backups of the data folder (`wardgate backup -config FILE DIR`).
//
// Of a running gateway, the copy is made by the gateway itself
// (POST /api/backup, with the admin token, answered with a tar stream): each
// store copies itself at one moment without stopping (buffer's Backup
// methods), in an order that keeps what moves between stores: a frame
// leaves the held store only once it is in the outbox, and a study is
// marked charted in the ledger only once its ImagingStudy is in the outbox,
// so the held store and the ledger are copied before the outbox; the
// spool's instances are copied as its index names them, removals waiting
// only for hard links. The copy holds everything acknowledged before the
// request; what is acknowledged while it runs may or may not be in it.
//
// Of a stopped gateway, the copy is of the files as the stop left them,
// made under the data folder's lock (a gateway started meanwhile refuses
// to start until the copy is done).
//
// Either way, the last file is wardgate-backup.json, the manifest: every
// file with its size and SHA-256, which the command checks as it writes;
// a folder without it is not a backup.

// BackupManifestName is the manifest's file name in a backup.
const BackupManifestName = "wardgate-backup.json"

// BackupFormat marks a backup's manifest.
var BackupFormat = buffer.Format{Name: "wardgate-backup", Version: 1}

// BackupManifest describes a backup.
type BackupManifest struct {
	Format   string       `json:"format"`
	Site     string       `json:"site"`
	Wardgate string       `json:"wardgate"`
	Commit   string       `json:"commit"`
	Taken    time.Time    `json:"taken"`
	Running  bool         `json:"running"` // copied from a running gateway
	Files    []BackupFile `json:"files"`
}

// BackupFile is one file of a backup.
type BackupFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// manifestWriter hashes every file handed to w and lists it.
type manifestWriter struct {
	w  buffer.BackupWriter
	mu sync.Mutex
	m  BackupManifest
}

func (mw *manifestWriter) File(name string, size int64, write func(io.Writer) error) error {
	if name == BackupManifestName {
		return fmt.Errorf("%s: a data file of that name", name)
	}
	h := sha256.New()
	var n int64
	err := mw.w.File(name, size, func(out io.Writer) error {
		cw := &countWriter{w: io.MultiWriter(out, h)}
		err := write(cw)
		n = cw.n
		return err
	})
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s: %d bytes written, %d announced", name, n, size)
	}
	mw.mu.Lock()
	mw.m.Files = append(mw.m.Files, BackupFile{Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	mw.mu.Unlock()
	return nil
}

// finish writes the manifest, last.
func (mw *manifestWriter) finish() (BackupManifest, error) {
	b, err := json.MarshalIndent(mw.m, "", "  ")
	if err != nil {
		return mw.m, err
	}
	b = append(b, '\n')
	err = mw.w.File(BackupManifestName, int64(len(b)), func(out io.Writer) error {
		_, err := out.Write(b)
		return err
	})
	return mw.m, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newManifest(site string, running bool) *manifestWriter {
	return &manifestWriter{m: BackupManifest{
		Format: BackupFormat.String(), Site: site, Wardgate: build.Version(), Commit: build.Commit(),
		Taken: time.Now().UTC(), Running: running,
	}}
}

// backupRunning copies the running gateway's data folder to w.
func (g *Gateway) backupRunning(ctx context.Context, w buffer.BackupWriter) (BackupManifest, error) {
	mw := newManifest(g.cfg.Site, true)
	mw.w = w
	g.mu.Lock()
	node := g.dicom
	g.mu.Unlock()
	if node == nil && g.cfg.DICOM != nil {
		return mw.m, errors.New("the DICOM node is not running (the gateway is starting or stopping): try again")
	}
	// What feeds the patient rules first: the files are whole (each is
	// rewritten by a rename), the clocks as they are now.
	for _, name := range []string{associationsFile, staysFile, adtStaysFile} {
		if err := copyWhole(mw, g.cfg.DataDir, name); err != nil {
			return mw.m, err
		}
	}
	if b, err := encodeClocksFile(g.clocks.State()); err != nil {
		return mw.m, err
	} else if err := mw.File(clocksFile, int64(len(b)), func(out io.Writer) error { _, err := out.Write(b); return err }); err != nil {
		return mw.m, err
	}
	if err := g.seen.Backup("seen.db", mw); err != nil {
		return mw.m, fmt.Errorf("seen.db: %w", err)
	}
	if err := g.held.Backup("held.db", mw); err != nil {
		return mw.m, fmt.Errorf("held.db: %w", err)
	}
	// The charting window after the held frames (a frame resolved in
	// between is in both; charted twice, it is kept once) and before the
	// outbox (an interval charted in between is in the window still).
	if err := g.chart.store.Backup("charting.db", mw); err != nil {
		return mw.m, fmt.Errorf("charting.db: %w", err)
	}
	if g.spool != nil {
		if err := g.spool.Backup(ctx, "spool", mw); err != nil {
			return mw.m, err
		}
	}
	if node != nil && node.Ledger != nil {
		if err := node.Ledger.Backup("spool/ledger.db", mw); err != nil {
			return mw.m, fmt.Errorf("spool/ledger.db: %w", err)
		}
	}
	if err := g.outbox.Backup("outbox.db", mw); err != nil {
		return mw.m, fmt.Errorf("outbox.db: %w", err)
	}
	return mw.finish()
}

// copyWhole copies a file of the data folder read at once; a missing one
// is no part of the copy.
func copyWhole(w buffer.BackupWriter, dir, name string) error {
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return w.File(name, int64(len(b)), func(out io.Writer) error { _, err := out.Write(b); return err })
}

// backupFiles are the files of a stopped gateway's folder that a backup
// copies (with every regular file under spool/objects/): the data, not the
// lock, the reserves, temporary files or spool/tmp/.
var backupFiles = []string{
	associationsFile, staysFile, adtStaysFile, clocksFile,
	"seen.db", "held.db", "held.db.journal", "charting.db", "charting.db.journal",
	"spool/index.db", "spool/index.journal", "spool/ledger.db",
	"outbox.db", "outbox.db.journal",
}

// BackupStopped copies the data folder of a gateway that is not running,
// under the folder's lock, to w. It fails with ErrGatewayRunning when the
// folder is in use.
func BackupStopped(c *config.Config, w buffer.BackupWriter) (BackupManifest, error) {
	mw := newManifest(c.Site, false)
	mw.w = w
	if _, err := os.Stat(c.DataDir); err != nil {
		return mw.m, fmt.Errorf("data_dir: %w", err)
	}
	lock, err := lockDataDir(c.DataDir)
	if err != nil {
		if errors.Is(err, errDataDirInUse) {
			return mw.m, fmt.Errorf("%w: %v", ErrGatewayRunning, err)
		}
		return mw.m, err
	}
	defer lock.release()
	for _, name := range backupFiles {
		if err := copyStill(mw, c.DataDir, name); err != nil {
			return mw.m, err
		}
	}
	objects := filepath.Join(c.DataDir, "spool", "objects")
	err = filepath.WalkDir(objects, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == objects {
			return filepath.SkipDir
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(c.DataDir, p)
		if err != nil {
			return err
		}
		return copyStill(mw, c.DataDir, filepath.ToSlash(rel))
	})
	if err != nil {
		return mw.m, err
	}
	return mw.finish()
}

// copyStill copies a file nothing writes to (the gateway is stopped).
func copyStill(w buffer.BackupWriter, dir, name string) error {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	return w.File(name, info.Size(), func(out io.Writer) error {
		_, err := io.Copy(out, io.LimitReader(f, info.Size()))
		return err
	})
}

// ErrGatewayRunning is BackupStopped's error for a folder in use.
var ErrGatewayRunning = errors.New("the gateway is running")

// POST /api/backup: a tar stream of a consistent copy of the data folder.
// It holds patient data: admin only (and so never without a token).
func (g *Gateway) serveBackup(w http.ResponseWriter, r *http.Request) {
	if g.backupBusy.Swap(true) {
		writeError(w, http.StatusConflict, "a backup is already being made")
		return
	}
	defer g.backupBusy.Store(false)
	start := time.Now()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Cache-Control", "no-store")
	tw := &tarWriter{tw: tar.NewWriter(w)}
	m, err := g.backupRunning(r.Context(), tw)
	if err == nil {
		err = tw.tw.Close()
	}
	var bytes int64
	for _, f := range m.Files {
		bytes += f.Size
	}
	if err != nil {
		// The stream ends without its manifest: the command says the
		// backup failed.
		g.log.Error("backup failed", "err", err, "files", len(m.Files), "bytes", bytes)
		return
	}
	g.log.Info("backup made", "files", len(m.Files), "bytes", bytes, "took", time.Since(start).Round(time.Millisecond))
}

// tarWriter writes a backup's files into a tar stream.
type tarWriter struct {
	mu sync.Mutex
	tw *tar.Writer
}

func (t *tarWriter) File(name string, size int64, write func(io.Writer) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o600, ModTime: time.Now(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	return write(t.tw)
}

// DirWriter writes a backup's files into a folder (every file and folder
// flushed to disk), and checks them against the manifest when it arrives.
type DirWriter struct {
	Dir   string
	files map[string]BackupFile
	dirs  map[string]bool
	// Manifest is set once the manifest was written and every file
	// matched it.
	Manifest *BackupManifest
}

// NewDirWriter writes into dir, which must be missing or empty.
func NewDirWriter(dir string) (*DirWriter, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s is not empty: a backup goes into a new folder", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &DirWriter{Dir: dir, files: map[string]BackupFile{}, dirs: map[string]bool{}}, nil
}

// File writes one file.
func (d *DirWriter) File(name string, size int64, write func(io.Writer) error) error {
	clean := path.Clean(name)
	if !fs.ValidPath(clean) || clean != name || strings.Contains(name, `\`) {
		return fmt.Errorf("a backup file named %q", name)
	}
	p := filepath.Join(d.Dir, filepath.FromSlash(name))
	if err := d.mkdir(filepath.Dir(p)); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = write(cw)
	if err == nil && cw.n != size {
		err = fmt.Errorf("%s: %d bytes, %d announced", name, cw.n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if name == BackupManifestName {
		return d.check(p)
	}
	d.files[name] = BackupFile{Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))}
	return nil
}

func (d *DirWriter) mkdir(dir string) error {
	if d.dirs[dir] {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	d.dirs[dir] = true
	return nil
}

// check compares the files written with the manifest, then flushes the
// folders.
func (d *DirWriter) check(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var m BackupManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("the backup's manifest: %w", err)
	}
	if err := BackupFormat.Check(p, m.Format); err != nil {
		return err
	}
	if len(m.Files) != len(d.files) {
		return fmt.Errorf("the manifest lists %d files, %d arrived", len(m.Files), len(d.files))
	}
	for _, f := range m.Files {
		if got, ok := d.files[f.Name]; !ok || got != f {
			return fmt.Errorf("%s does not match the manifest", f.Name)
		}
	}
	for dir := range d.dirs {
		if err := buffer.SyncDir(dir); err != nil {
			return err
		}
	}
	if err := buffer.SyncDir(d.Dir); err != nil {
		return err
	}
	d.Manifest = &m
	return nil
}

// ReadBackupTar writes the files of a tar stream (POST /api/backup's
// answer) into d; the stream must end with the manifest.
func ReadBackupTar(r io.Reader, d *DirWriter) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("the backup stream was cut short: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("the backup stream holds %q, not a file", h.Name)
		}
		if d.Manifest != nil {
			return fmt.Errorf("the backup stream goes on after its manifest")
		}
		err = d.File(h.Name, h.Size, func(out io.Writer) error {
			_, err := io.Copy(out, tr)
			return err
		})
		if err != nil {
			return err
		}
	}
	if d.Manifest == nil {
		return errors.New("the backup stream ended without its manifest: the gateway could not finish it (its log says why)")
	}
	return nil
}
