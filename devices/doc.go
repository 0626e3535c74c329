// Package devices is what wardgate knows of bedside monitors, below the
// gateway: the Reading every source produces (with its MDC code and the
// device's clock, Clock), the Sink sources hand readings to, the Monitor
// that keeps each source's state and counters for the status page, and
// the Intake through which every source stamps its frames, notices
// silence and hands readings to the Sink.
//
// Its sub-packages hold the sources and what they use: serial (RS-232 and
// pseudo-terminals) and mqtt (a broker, QoS 1, acknowledged after commit);
// profile, the firmware-profile engine that frames and decodes a monitor's
// output; mdc, the IEEE 11073-10101 codes; sim, simulated monitors;
// yamlstrict, the strict YAML decoding of profiles. devices never imports
// edge.
//
// # When the outbox refuses readings
//
// Every source applies one policy, Intake.Ingest, when the Sink refuses
// readings (the outbox is full, or its disk fails): nothing that is not
// stored is acknowledged, the refused readings are offered again each
// second, and the monitor is shown as failing (state "error", with the
// reason) until the outbox takes readings again. How long they are offered
// depends on what the transport can keep:
//
//   - MQTT at QoS 1 can keep them: the messages are not acknowledged (no
//     PUBACK) and are offered until they are stored; meanwhile the source
//     takes nothing new and the broker holds the rest, and what was not
//     acknowledged when the gateway stops is delivered again. Nothing is
//     lost.
//   - A serial line cannot be asked to send again: a refused frame is
//     offered for at most serial.Source.OutboxWait (5 s) while the
//     monitor's next bytes wait in the port's driver, then its readings are
//     counted lost (Status.Lost, readings_lost in wardgate_errors_total) and
//     logged without their values. Until the outbox takes readings again,
//     later frames are offered once each, so the source keeps pace with the
//     line and every reading it could not store is counted.
package devices
