package english

import (
	"testing"

	"k8s.io/kubectl/pkg/util/i18n"
)

func TestKubectlTextStaysAsWritten(t *testing.T) {
	if Err != nil {
		t.Fatalf("the translation loader was not replaced: %v", Err)
	}
	const text = "Print the supported API resources on the server"
	if got := i18n.T(text); got != text {
		t.Errorf("i18n.T(%q) = %q, want the text as written", text, got)
	}
	if !Loaded {
		t.Error("i18n.T did not go through the replaced loader")
	}
}
