package discordtest

import "time"

// Discord's gateway send limit (developers/events/gateway#rate-limiting): a client may
// send 120 payloads per connection every 60 s; Discord closes a connection that sends more
// with 4008 (Options.EnforceSendLimit).
const (
	SendLimit       = 120
	SendLimitWindow = 60 * time.Second
)

// sendLimitWindow is the payloads a connection sent within the last SendLimitWindow, at
// most SendLimit of them, oldest first. Guarded by Server.mu.
type sendLimitWindow struct {
	received []time.Time
}

// overLimit records a payload received at now and says whether it is one too many: the
// SendLimit-th before it came less than SendLimitWindow ago.
func (w *sendLimitWindow) overLimit(now time.Time) bool {
	if len(w.received) == SendLimit {
		if now.Sub(w.received[0]) < SendLimitWindow {
			return true
		}
		w.received = append(w.received[:0], w.received[1:]...)
	}
	w.received = append(w.received, now)
	return false
}
