package serial

import (
	"fmt"
	"io"
)

// DuplexPort is a port the gateway writes to as well: a monitor that must be
// talked to (devices/dialogues).
type DuplexPort interface {
	Port
	io.Writer
}

// OpenDuplex opens the port at path with settings s (flow control
// included), for reading and writing.
func OpenDuplex(path string, s Settings) (DuplexPort, error) {
	p, err := openSerial(path, s)
	if err != nil {
		return nil, err
	}
	d, ok := p.(DuplexPort)
	if !ok {
		p.Close()
		return nil, fmt.Errorf("%s cannot be written to", path)
	}
	return d, nil
}
