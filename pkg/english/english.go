// Package english keeps kubectl's i18n from loading a translation catalog.
//
// The kubectl packages the plugin links call i18n.T in package-level
// variables (kubectl's apiresources, get, …), and the first call unpacks and
// parses a gettext catalog: about 4.4 MB allocated and 20–50 ms of every
// start-up, before a command even runs, for text that is English as written.
// The plugin's own text is English only, so the kubectl strings it shows stay
// English too. Import this package for its side effect before any package that
// calls i18n.T; being a leaf that imports only i18n, Go's init order (ready
// packages in import-path order) runs it right after i18n itself.
package english

import "k8s.io/kubectl/pkg/util/i18n"

// Err is why the loader could not be replaced: non-nil only if some package
// called i18n.T before this package's init ran.
var Err = i18n.SetLoadTranslationsFunc(func() error {
	Loaded = true
	return nil
})

// Loaded reports whether i18n asked for translations (and got none).
var Loaded bool
