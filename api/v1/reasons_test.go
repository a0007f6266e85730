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
