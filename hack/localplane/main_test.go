package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestLocalplaneRunsTheOperatorOnTheSamples(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	var out bytes.Buffer
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := run(context.Background(), options{kubeconfig: kubeconfig, defaultBotImage: "img", once: true}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"hello-bot", "big-bot", "0/16", "Starting", "export KUBECONFIG=" + kubeconfig} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
