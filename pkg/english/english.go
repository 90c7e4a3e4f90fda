// Package english keeps kubectl's i18n from loading a translation catalog.
//
// The first i18n.T call in a process unzips and parses a gettext catalog:
// about 4.4 MB allocated and 20-50 ms on a busy machine. kubectl's command
// packages call it in package-level variables, so linking one of them makes
// every start-up pay that before any command runs: kubectl's exec package
// brought in apiresources and get this way, 18-56 ms of the plugin's start-up
// until the exec path moved to client-go. Nothing linked today calls i18n.T
// at init or in the plugin's commands; this package keeps it so, since the
// plugin's own text is English only and kubectl's strings it shows stay
// English too. Import it for its side effect; being a leaf that imports only
// i18n, Go's init order (ready packages in import-path order) runs it right
// after i18n, before any package that could call i18n.T.
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
