package buffer

import (
	"math"
	"math/rand/v2"
	"time"
)

// Backoff computes how long a failed delivery waits before its next attempt:
// Initial after the first failure, multiplied by Multiplier after each further
// one, never more than Max, with "equal jitter" (a random point in the upper
// half of the delay) so that many items that failed together do not all come
// back at the same instant.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
}

// DefaultBackoff is 2 s, doubling, capped at 5 minutes.
var DefaultBackoff = Backoff{Initial: 2 * time.Second, Max: 5 * time.Minute, Multiplier: 2}

// Delay returns the wait after the given number of attempts (1 for the first
// failure).
func (b Backoff) Delay(attempts int) time.Duration {
	return b.delay(attempts, rand.Float64())
}

// delay is Delay with the random draw r in [0,1) given.
func (b Backoff) delay(attempts int, r float64) time.Duration {
	if b.Initial <= 0 {
		b = DefaultBackoff
	}
	if b.Multiplier < 1 {
		b.Multiplier = 1
	}
	if attempts < 1 {
		attempts = 1
	}
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempts-1))
	if b.Max > 0 && (d > float64(b.Max) || math.IsInf(d, 0)) {
		d = float64(b.Max)
	}
	return time.Duration(d/2 + r*d/2)
}
