package main

import (
	"math"
	"testing"
)

func TestFitLine(t *testing.T) {
	tests := map[string]struct {
		x, y   []float64
		want   line
		wantOK bool
	}{
		"exact":         {x: []float64{1, 4, 16}, y: []float64{12, 18, 42}, want: line{intercept: 10, slope: 2}, wantOK: true},
		"two points":    {x: []float64{1, 3}, y: []float64{5, 1}, want: line{intercept: 7, slope: -2}, wantOK: true},
		"noisy":         {x: []float64{1, 2, 3}, y: []float64{1, 3, 2}, want: line{intercept: 1, slope: 0.5}, wantOK: true},
		"one point":     {x: []float64{4}, y: []float64{8}},
		"same x":        {x: []float64{4, 4}, y: []float64{8, 9}},
		"length differ": {x: []float64{1, 2}, y: []float64{1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := fitLine(tc.x, tc.y)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if math.Abs(got.slope-tc.want.slope) > 1e-9 || math.Abs(got.intercept-tc.want.intercept) > 1e-9 {
				t.Errorf("fit = %+v, want %+v", got, tc.want)
			}
		})
	}
}
