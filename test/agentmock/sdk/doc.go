// Package sdk tests test/agentmock with the official Go SDKs of the two
// APIs it serves, Anthropic's (github.com/anthropics/anthropic-sdk-go) and
// OpenAI's (github.com/openai/openai-go): clients nobody here wrote parse its
// streams and its errors. A module of its own, so the SDKs and what they
// pull in stay out of the product's go.mod; test/agentmock's
// TestOfficialSDKs runs it.
package sdk
