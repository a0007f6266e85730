package main

// line is y = intercept + slope*x.
type line struct{ intercept, slope float64 }

// fitLine is the least-squares line through the points (x[i], y[i]): over pods of 1, 4
// and 16 shards, the slope is what one more shard costs and the intercept what a pod
// costs before its first shard. It needs two distinct x values; ok is false otherwise.
func fitLine(x, y []float64) (l line, ok bool) {
	n := float64(len(x))
	if len(x) != len(y) || len(x) < 2 {
		return line{}, false
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return line{}, false
	}
	l.slope = (n*sxy - sx*sy) / den
	l.intercept = (sy - l.slope*sx) / n
	return l, true
}
