// Package buffer keeps what wardgate has accepted on its own disk until the
// central record (or the PACS) has it. It holds two stores, each under the
// gateway's data_dir:
//
//   - the Outbox (outbox.db, a bbolt file, and outbox.db.journal, its
//     write-ahead journal): small items such as FHIR resources waiting to be
//     delivered, leased in batches by the deliverer, acknowledged (removed),
//     retried with backoff, or moved to a dead-letter list;
//   - the Spool (spool/): DICOM instances as files, with a bbolt index
//     (spool/index.db).
//
// # What is durable when
//
// Outbox.Append returns nil only after its items are in the journal and the
// journal has been fdatasynced. An item for which Append returned nil survives
// a crash of the process or a loss of power (on a disk that honours flushes).
// When Append returns an error, none of its items are stored; the items of one
// Append call are written in one checksummed record, together or not at all.
// Concurrent calls share one fdatasync (group commit): a record holds every
// call that was waiting when it was written, so N concurrent appenders cost
// one flush, not N. A checkpoint moves journalled items into bbolt within
// about 50 ms (in one bbolt transaction that also records how far the journal
// is applied); only then can they be leased. Open replays the journal records
// that the last checkpoint had not applied, so a record is applied exactly
// once, and a record torn by the crash (which no Append had returned for) is
// ignored.
//
// Ack, Nack, DeadLetter, Lease and the dead-letter operations go straight to
// bbolt, which writes the changed pages, fdatasyncs, writes the meta page and
// fdatasyncs again; they are durable when they return nil, and concurrent
// ones share a commit too. A lease is written to disk (its attempt
// count goes up) before Lease returns the batch, so a delivery cut short by a
// crash is counted; leases found at Open were left by an earlier run and are
// released then. Delivery is therefore at least once: an item whose delivery
// was under way at a crash is delivered again after the restart, and
// consumers must make their writes idempotent.
//
// Spool.Create returns a SpoolWriter; SpoolWriter.Commit returns nil only
// after the instance is durable. Its bytes are written to the file they keep,
// made ahead in objects/ with its name already fsynced into its folder, so
// no rename and no folder fsync stand between the last byte and Success. For
// a new key the index entry is appended to spool/index.journal while the
// file is fdatasynced, the two at once, and Commit returns when both are
// durable; concurrent commits share the journal's fdatasync. An applier
// moves journalled entries into index.db within about 100 ms (one bbolt
// transaction, which also records the last journal record applied), and
// readers see them meanwhile. A replacement (the key is already stored)
// fsyncs its file and then commits the entry straight into index.db. Before
// Commit returns, nothing of the instance is visible to readers of the
// spool. After a crash, OpenSpool replays the journal records not yet
// applied, keeping an entry only when its file has the size and SHA-256 it
// records (otherwise the store was cut short and never acknowledged),
// removes files that no index entry names (stores that did not finish),
// and drops index entries whose file is missing or of the wrong size, and
// reports each count so that nothing disappears silently. An instance's
// SHA-256 covers its content after the header given to WriteHeader (for
// DICOM, the data set without the meta header that names its sender).
//
// # Bounds
//
// Each store has a byte quota. An Append or a spool write that would go past
// it fails with an error matching ErrFull, as does a write that meets a full
// disk (ENOSPC); nothing already stored is evicted to make room. Callers turn
// ErrFull into a refusal upstream (C-STORE status A700, no MQTT PUBACK).
//
// Beside each bbolt file lies a reserve file (a 128th of the store's quota,
// between 1 and 8 MiB; an outbox journal is a 64th, between 4 and 32 MiB;
// a Lazy outbox makes both at its first Append). When a commit that
// frees room or lets delivery go on (a lease, an ack, a dead-letter edit, a
// spool removal) meets a full disk, the reserve is deleted and the commit
// tried again, so that a disk filled by something else does not stop the
// gateway from delivering, and so from freeing room. New data never uses the
// reserve. It is made again at the next open when there is room.
//
// # Ownership
//
// One process owns a store at a time: bbolt locks each database file, and a
// second Open of the same file fails after a short wait instead of blocking.
// A file that is not a wardgate store is never written to; Open reports it and
// leaves it as it was.
package buffer
