// Package devices is what wardgate knows of bedside monitors, below the
// gateway: the Reading every source produces (with its MDC code and the
// device's clock, Clock), the Sink sources hand readings to, and the
// Monitor that keeps each source's state and counters for the status page.
//
// Its sub-packages hold the sources and what they use: serial (RS-232 and
// pseudo-terminals) and mqtt (a broker, QoS 1, acknowledged after commit);
// profile, the firmware-profile engine that frames and decodes a monitor's
// output; mdc, the IEEE 11073-10101 codes; sim, simulated monitors;
// yamlstrict, the strict YAML decoding of profiles. devices never imports
// edge.
package devices
