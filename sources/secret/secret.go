// Package secret is the type of a configured secret (a token, a password,
// a webhook URL): it prints, logs and marshals as <secret>, so a config
// dumped or logged by mistake shows none; Reveal is the one way to its value.
package secret

import (
	"fmt"
	"log/slog"
)

// Secret is a configured secret.
type Secret string

func (Secret) String() string               { return "<secret>" }
func (s Secret) GoString() string           { return s.String() }
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("<secret>")) }
func (Secret) LogValue() slog.Value         { return slog.StringValue("<secret>") }

// MarshalJSON: an unset secret marshals as "", so a dumped config tells
// set from unset.
func (s Secret) MarshalJSON() ([]byte, error) {
	if s == "" {
		return []byte(`""`), nil
	}
	return []byte(`"<secret>"`), nil
}

func (s Secret) MarshalYAML() (any, error) {
	if s == "" {
		return "", nil
	}
	return "<secret>", nil
}

// Reveal is the value, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// Empty reports whether it is unset.
func (s Secret) Empty() bool { return s == "" }
