package proc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metrics are samples from a Prometheus text endpoint, summed over labels by name. A name
// split by a label (see Scrape) also has one entry per value of it, as "name/value".
type Metrics map[string]float64

// Scrape reads a Prometheus text endpoint. splitBy maps a metric name to a label whose
// values are worth keeping apart, e.g. {"rest_client_requests_total": "method"}.
func Scrape(ctx context.Context, url string, splitBy map[string]string) (Metrics, error) {
	return ScrapeWith(ctx, http.DefaultClient, url, splitBy)
}

// ScrapeWith is Scrape through client (e.g. one that accepts a component's self-signed
// certificate on loopback).
func ScrapeWith(ctx context.Context, client *http.Client, url string, splitBy map[string]string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return parseMetrics(resp.Body, splitBy)
}

func parseMetrics(r io.Reader, splitBy map[string]string) (Metrics, error) {
	out := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sep := strings.LastIndexByte(line, ' ')
		if sep < 0 {
			continue
		}
		value, err := strconv.ParseFloat(line[sep+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sep]
		name := series
		if i := strings.IndexByte(series, '{'); i >= 0 {
			name = series[:i]
			if label, ok := splitBy[name]; ok {
				if v, ok := labelValue(series[i:], label); ok {
					out[name+"/"+v] += value
				}
			}
		}
		out[name] += value
	}
	return out, sc.Err()
}

// labelValue finds label's value in a series' {a="x",b="y"} part.
func labelValue(labels, label string) (string, bool) {
	key := label + `="`
	for i := strings.Index(labels, key); i >= 0; {
		// A match must start a label, not end another one's name (method vs. xmethod).
		if prev := labels[i-1]; prev == '{' || prev == ',' {
			v := labels[i+len(key):]
			end := strings.IndexByte(v, '"')
			if end < 0 {
				return "", false
			}
			return v[:end], true
		}
		next := strings.Index(labels[i+1:], key)
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return "", false
}
