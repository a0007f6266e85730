package guildcache_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
)

// normalize decodes a payload for comparison: arrays of objects are sorted by their
// key (id, user.id or user_id), since neither side promises an order.
func normalize(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	return sortArrays(v)
}

func sortArrays(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, el := range v {
			v[k] = sortArrays(el)
		}
	case []any:
		for i, el := range v {
			v[i] = sortArrays(el)
		}
		keys := make([]string, len(v))
		for i, el := range v {
			k, ok := sortKey(el)
			if !ok {
				return v
			}
			keys[i] = k
		}
		idx := make([]int, len(v))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return snowflakeLess(keys[idx[a]], keys[idx[b]]) })
		sorted := make([]any, len(v))
		for i, j := range idx {
			sorted[i] = v[j]
		}
		return sorted
	}
	return v
}

func sortKey(v any) (string, bool) {
	o, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	if id, ok := o["id"].(string); ok {
		return id, true
	}
	if id, ok := o["user_id"].(string); ok {
		return id, true
	}
	if u, ok := o["user"].(map[string]any); ok {
		if id, ok := u["id"].(string); ok {
			return id, true
		}
	}
	return "", false
}

// snowflakeLess orders decimal snowflakes numerically.
func snowflakeLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// jsonDiff describes the first difference between two normalized payloads, "" if none.
func jsonDiff(got, want any) string { return diffAt("$", got, want) }

func diffAt(path string, got, want any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: got %s, want an object", path, short(got))
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				return fmt.Sprintf("%s.%s missing, want %s", path, k, short(wv))
			case !wok:
				return fmt.Sprintf("%s.%s is %s, want no such field", path, k, short(gv))
			}
			if d := diffAt(path+"."+k, gv, wv); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("%s: got %s, want an array", path, short(got))
		}
		for i := range min(len(g), len(w)) {
			if d := diffAt(fmt.Sprintf("%s[%d]", path, i), g[i], w[i]); d != "" {
				return d
			}
		}
		if len(g) != len(w) {
			return fmt.Sprintf("%s: %d elements, want %d: got %s, want %s", path, len(g), len(w), short(got), short(want))
		}
		return ""
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("%s: got %s, want %s", path, short(got), short(want))
	}
	return ""
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
