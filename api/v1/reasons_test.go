package v1_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	shardkeeperv1 "github.com/shardkeeper/shardkeeper/api/v1"
)

// Every Reason constant of the API can end up in a condition (a halt's reason becomes the
// Ready condition's, a pod action's reason an event's): one the API server refuses there
// would fail every status patch of the bot. And each reason has one name, so that a user
// searching for it finds every place it is used.
func TestEveryReasonIsAConditionReason(t *testing.T) {
	reasons := reasonConstants(t)
	if len(reasons) < 40 {
		t.Fatalf("found only %d Reason constants; is the parse broken?", len(reasons))
	}
	camelCase := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	named := map[string]string{}
	for name, value := range reasons {
		c := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: value, LastTransitionTime: metav1.NewTime(time.Now())}
		if errs := metav1validation.ValidateCondition(c, field.NewPath("status", "conditions").Index(0)); len(errs) > 0 {
			t.Errorf("%s = %q is no valid condition reason: %v", name, value, errs.ToAggregate())
		}
		if !camelCase.MatchString(value) {
			t.Errorf("%s = %q is not a CamelCase word", name, value)
		}
		if other, ok := named[value]; ok {
			t.Errorf("%q is named twice: %s and %s", value, name, other)
		}
		named[value] = name
	}
}

// reasonConstants reads the package's constants named Reason*, by name.
func reasonConstants(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Reason") {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("%s is not a string literal; write reasons out", name.Name)
						continue
					}
					out[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
	}
	return out
}

// The termination message is read from pods of any version: what bots wrote before the
// report had a type must read the same.
func TestTerminationMessages(t *testing.T) {
	tests := map[string]struct {
		msg       string
		want      shardkeeperv1.StopReport
		wantOK    bool
		wantFatal bool
	}{
		"an invalid token": {msg: "TokenInvalid: Discord rejected the bot token (close 4004 authentication failed)",
			want: shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonTokenInvalid, Message: "Discord rejected the bot token (close 4004 authentication failed)"}, wantOK: true, wantFatal: true},
		"a message with a colon of its own": {msg: "BadConfiguration: reading the token: no such file\n",
			want: shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonBadConfiguration, Message: "reading the token: no such file"}, wantOK: true, wantFatal: true},
		"a replaced pod is no fatal reason": {msg: "PodReplaced: another pod of the same name took over",
			want: shardkeeperv1.StopReport{Reason: shardkeeperv1.ReasonPodReplaced, Message: "another pod of the same name took over"}, wantOK: true},
		"a panic is no report":         {msg: "panic: runtime error: index out of range", want: shardkeeperv1.StopReport{Reason: "panic", Message: "runtime error: index out of range"}, wantOK: true},
		"text without a reason":        {msg: "killed"},
		"an empty termination message": {msg: ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := shardkeeperv1.ParseTerminationMessage(tt.msg)
			if got != tt.want || ok != tt.wantOK || got.Fatal() != tt.wantFatal {
				t.Errorf("got %+v ok=%v fatal=%v, want %+v ok=%v fatal=%v", got, ok, got.Fatal(), tt.want, tt.wantOK, tt.wantFatal)
			}
			if ok {
				if again, _ := shardkeeperv1.ParseTerminationMessage(got.TerminationMessage()); again != got {
					t.Errorf("written again it reads %+v", again)
				}
			}
		})
	}
}
