// Package e2b is `kubectl agentkernel serve`: E2B's API over this plugin's
// sandboxes, so that unchanged code using E2B's SDK runs on the user's own
// cluster. One http.Handler answers both of the SDK's addresses
// (E2B_API_URL and E2B_SANDBOX_URL): a request that names a sandbox in its
// E2b-Sandbox-Id header is envd's (package envd, authenticated by the
// sandbox's access token), every other request is the control plane's
// (package api, generated from E2B's openapi.yml; authenticated by an API
// key). A sandbox ID is the sandbox's name; every sandbox lives in serve's
// namespace.
//
// Both ends are untrusted: the SDK's requests (bounded bodies, checked
// input, E2B's {code, message} errors for anything else) and what comes
// out of a sandbox.
package e2b
