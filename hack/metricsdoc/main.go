// Command metricsdoc writes the metrics reference of docs/operations.md from the code:
// every metric the operator and a bot export, with its type, labels and help.
//
// Usage: go run ./hack/metricsdoc [-doc docs/operations.md]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shardkeeper/shardkeeper/internal/metricsref"
)

func main() {
	doc := flag.String("doc", "docs/operations.md", "the document whose generated metrics section to rewrite")
	flag.Parse()
	if err := update(*doc); err != nil {
		fmt.Fprintln(os.Stderr, "metricsdoc:", err)
		os.Exit(1)
	}
}

// update rewrites the section of the document at path, leaving the rest as it is.
func update(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	updated, err := render(string(raw))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(updated), 0o644)
}

func render(doc string) (string, error) {
	metrics, err := metricsref.All()
	if err != nil {
		return "", err
	}
	return metricsref.Replace(doc, metricsref.Markdown(metrics))
}
