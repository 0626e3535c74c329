//go:build !linux

package serial

import "fmt"

func flowSupported(flow string) bool { return flow == "none" }

// SetFlowControl sets the flow control of port, open on path; this build
// (not Linux) sets none but "none".
func SetFlowControl(port any, path, flow string) error {
	if flow == "none" {
		return nil
	}
	return fmt.Errorf("flow control %q is set through termios on Linux only", flow)
}
