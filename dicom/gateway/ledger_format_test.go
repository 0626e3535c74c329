package gateway

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/buffer"
)

// A ledger written by a newer wardgate is refused with the clear message
// (naming its format), not opened.
func TestLedgerOfANewerFormatIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	newer := buffer.Format{Name: LedgerFormat.Name, Version: LedgerFormat.Version + 1}
	st, err := buffer.OpenStore(path, newer.String(), buffer.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	_, err = OpenLedger(path)
	if !errors.Is(err, buffer.ErrNewerFormat) || !strings.Contains(err.Error(), "("+newer.String()+")") {
		t.Fatalf("%v", err)
	}
}
