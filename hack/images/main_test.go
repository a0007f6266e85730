package main

import (
	"errors"
	"flag"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardkeeper/shardkeeper/internal/imagebuild"
)

func TestParseOptions(t *testing.T) {
	defaults := imagebuild.Options{
		RepositoryPrefix: "ghcr.io/shardkeeper",
		Tag:              "dev",
		Version:          "dev",
		GOARCH:           runtime.GOARCH,
		OutDir:           "bin/images",
		CABundle:         "/etc/ssl/certs/ca-certificates.crt",
	}
	tests := map[string]struct {
		args    []string
		env     map[string]string
		want    func(o *imagebuild.Options)
		wantErr string
	}{
		"defaults": {want: func(*imagebuild.Options) {}},
		"every flag": {
			args: []string{"--repository-prefix=registry.local:5000/sk", "--tag=v1", "--version=v1.2.3",
				"--arch=arm64", "--out=/tmp/images", "--only= bot,operator ,", "--ca-bundle=/certs.pem"},
			want: func(o *imagebuild.Options) {
				o.RepositoryPrefix, o.Tag, o.Version = "registry.local:5000/sk", "v1", "v1.2.3"
				o.GOARCH, o.OutDir, o.Only, o.CABundle = "arm64", "/tmp/images", []string{"bot", "operator"}, "/certs.pem"
			},
		},
		"SOURCE_DATE_EPOCH": {
			env:  map[string]string{"SOURCE_DATE_EPOCH": "1700000000"},
			want: func(o *imagebuild.Options) { o.Created = time.Unix(1700000000, 0) },
		},
		"SOURCE_DATE_EPOCH not seconds": {
			env:     map[string]string{"SOURCE_DATE_EPOCH": "2024-01-01"},
			wantErr: "SOURCE_DATE_EPOCH",
		},
		"stray argument": {args: []string{"operator"}, wantErr: "unexpected arguments"},
		"help":           {args: []string{"--help"}, wantErr: flag.ErrHelp.Error()},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseOptions(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tt.want(&want)
			if got.RepositoryPrefix != want.RepositoryPrefix || got.Tag != want.Tag || got.Version != want.Version ||
				got.GOARCH != want.GOARCH || got.OutDir != want.OutDir || got.CABundle != want.CABundle ||
				!slices.Equal(got.Only, want.Only) || !got.Created.Equal(want.Created) {
				t.Errorf("options %+v, want %+v", got, want)
			}
		})
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	var usage strings.Builder
	_, err := parseOptions([]string{"-h"}, func(string) string { return "" }, &usage)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v, want flag.ErrHelp (main exits 0)", err)
	}
	for _, want := range []string{"-repository-prefix", "-only", "operator, bot"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("usage does not mention %q:\n%s", want, usage.String())
		}
	}
}
