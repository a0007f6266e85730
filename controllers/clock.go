package controllers

import "k8s.io/utils/clock"

// Clock is the time source of every time-based decision, so tests can move time by hand.
type Clock = clock.PassiveClock

func clockOrReal(c Clock) Clock {
	if c == nil {
		return clock.RealClock{}
	}
	return c
}
