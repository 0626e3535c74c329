package edge

import (
	"context"
	"log/slog"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
)

// adtStays are the stays the hospital's ADT feed told of
// (patients.adt). TO BE WRITTEN: this is the contract the rest of the
// gateway uses.
type adtStays struct{}

// openADTStays opens the stays kept in dir.
func openADTStays(dir string, keep time.Duration, log *slog.Logger) (*adtStays, error) {
	return &adtStays{}, nil
}

func (s *adtStays) close() error { return nil }

// handleADT takes one message of the ADT feed (hl7.Handler): Accepted
// only once what it changes is durable.
func (g *Gateway) handleADT(ctx context.Context, m *hl7.Message, from hl7.Peer) hl7.Reply {
	return hl7.Reply{Outcome: hl7.Rejected, Code: hl7.ErrUnsupportedMessageType, Text: "the ADT feed is not read yet"}
}
