package devices

import "context"

// Sink is where sources hand their readings: Ingest returns once every
// frame's readings are durable (or an error, and then none of them is), so
// a source acknowledges its device (MQTT PUBACK) only after it. Reject
// keeps a frame that could not be decoded, raw, among the dead letters, so
// an engineer can see what the device sent without it ever reaching a log.
type Sink interface {
	Ingest(ctx context.Context, frames ...[]Reading) error
	Reject(ctx context.Context, device string, raw []byte, reason string) error
}
