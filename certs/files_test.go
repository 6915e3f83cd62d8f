package certs

import (
	"errors"
	"strings"
	"testing"
)

// TestFilesValidate: all three files or none; a half-given configuration is
// one sentence naming what is missing, and an input error.
func TestFilesValidate(t *testing.T) {
	for _, tc := range []struct {
		f       Files
		enabled bool
		missing string // "" if valid
	}{
		{Files{}, false, ""},
		{Files{"ca.pem", "a.pem", "a-key.pem"}, true, ""},
		{Files{"", "a.pem", "a-key.pem"}, false, "the CA file is missing"},
		{Files{"ca.pem", "", "a-key.pem"}, false, "the certificate file is missing"},
		{Files{"ca.pem", "a.pem", ""}, false, "the key file is missing"},
		{Files{"ca.pem", "", ""}, false, "the certificate file and the key file are missing"},
		{Files{"", "", "a-key.pem"}, false, "the CA file and the certificate file are missing"},
	} {
		err := tc.f.Validate()
		if tc.missing == "" {
			if err != nil {
				t.Errorf("%+v: %v, want valid", tc.f, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.missing) || strings.Contains(err.Error(), "\n") || !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: error %v, want one sentence saying %q, matching ErrInvalid", tc.f, err, tc.missing)
		}
		if got := tc.f.Enabled(); got != tc.enabled {
			t.Errorf("%+v: Enabled() = %v, want %v", tc.f, got, tc.enabled)
		}
	}
}
