package hack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckLargeFiles runs hack/check-large-files.sh in throwaway repositories: it is what
// keeps build outputs out of the history, so it must fail on them.
func TestCheckLargeFiles(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not on PATH")
	}
	script, err := filepath.Abs("check-large-files.sh")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20

	tests := map[string]struct {
		files   map[string]int // path -> size, committed
		staged  map[string]int // path -> size, only added to the index
		remove  []string       // committed, then removed by a later commit
		allow   string         // hack/large-files.allow
		args    []string
		wantErr bool
		want    []string // in the output
		notWant []string
	}{
		"small files pass": {
			files: map[string]int{"main.go": 100, "docs/a.md": limit},
			want:  []string{"no tracked file over 1 MiB"},
		},
		"a committed file over 1 MiB fails, named with its size": {
			files:   map[string]int{"main.go": 100, "cluster": limit + 1},
			wantErr: true,
			want:    []string{"cluster is 1.0 MiB (1048577 bytes), over the 1 MiB limit"},
		},
		"a staged file is checked before it is committed": {
			files:   map[string]int{"main.go": 100},
			staged:  map[string]int{"bin dir/operator": 3 * limit},
			wantErr: true,
			want:    []string{"bin dir/operator is 3.0 MiB (3145728 bytes)"},
		},
		"an allowlisted file passes, others still fail": {
			files:   map[string]int{"testdata/big.bin": 2 * limit, "other.bin": 2 * limit},
			allow:   "# reason\ntestdata/big.bin  # a fixture\n",
			wantErr: true,
			want:    []string{"other.bin is 2.0 MiB"},
			notWant: []string{"testdata/big.bin"},
		},
		"a file removed again is gone from the index": {
			files:  map[string]int{"main.go": 100},
			remove: []string{"cluster"},
			want:   []string{"no tracked file over 1 MiB"},
		},
		"a revision range finds a file a later commit removed": {
			files:   map[string]int{"main.go": 100},
			remove:  []string{"cluster"},
			args:    []string{"HEAD~2..HEAD"},
			wantErr: true,
			want:    []string{"cluster is 1.0 MiB"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			git := func(args ...string) {
				t.Helper()
				cmd := exec.Command("git", args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
					"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("git %v: %v\n%s", args, err, out)
				}
			}
			write := func(files map[string]int) {
				t.Helper()
				for path, size := range files {
					writeFile(t, filepath.Join(dir, path), strings.Repeat("x", size))
					git("add", "--", path)
				}
			}
			git("init", "-q")
			if tc.allow != "" {
				writeFile(t, filepath.Join(dir, "hack/large-files.allow"), tc.allow)
				git("add", "hack/large-files.allow")
			}
			write(tc.files)
			git("commit", "-q", "-m", "files")
			if len(tc.remove) > 0 {
				for _, path := range tc.remove {
					write(map[string]int{path: limit + 1})
				}
				git("commit", "-q", "-m", "add")
				git(append([]string{"rm", "-q", "--"}, tc.remove...)...)
				git("commit", "-q", "-m", "remove")
			}
			write(tc.staged)

			cmd := exec.Command(script, tc.args...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if tc.wantErr != (err != nil) {
				t.Errorf("err = %v, want error %v\n%s", err, tc.wantErr, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("output does not say %q:\n%s", want, out)
				}
			}
			for _, notWant := range tc.notWant {
				if strings.Contains(string(out), notWant) {
					t.Errorf("output names %q:\n%s", notWant, out)
				}
			}
		})
	}
}

// Outside a checkout there is nothing tracked: the check says so and passes.
func TestCheckLargeFilesOutsideGit(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "big.bin"), strings.Repeat("x", 2<<20))
	script, err := filepath.Abs("check-large-files.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "not a git checkout; skipped") {
		t.Errorf("err = %v, output:\n%s\nwant a pass that says it skipped", err, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
