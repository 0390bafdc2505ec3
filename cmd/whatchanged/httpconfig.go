package main

import (
	"maps"
	"net/http"
	"os"
	"slices"

	commoncfg "github.com/prometheus/common/config"
)

// HTTPConfig is Alertmanager's and Prometheus's http_config
// (prometheus/common): authorization, basic_auth, oauth2, tls_config,
// proxy_url, http_headers. Credentials given as *_file are re-read on every
// request and TLS files when they change, so a rotated Secret needs no
// restart. Absent: the defaults (HTTP/2, redirects followed where the
// caller allows them).
type HTTPConfig = *commoncfg.HTTPClientConfig

// checkHTTPConfig reports what would make roundTripper fail, at key (the
// http_config section): unreadable TLS files, a bad proxy.
func checkHTTPConfig(c HTTPConfig, key string, p problems) {
	if c == nil {
		return
	}
	if err := c.Validate(); err != nil {
		p.bad(key, err.Error())
		return
	}
	// Files are re-read on every request, so they may change; they must
	// exist now, or the first alert would find out. Each is named by its key.
	files := map[string]string{
		"tls_config.ca_file": c.TLSConfig.CAFile, "tls_config.cert_file": c.TLSConfig.CertFile, "tls_config.key_file": c.TLSConfig.KeyFile,
	}
	if a := c.Authorization; a != nil {
		files["authorization.credentials_file"] = a.CredentialsFile
	}
	if b := c.BasicAuth; b != nil {
		files["basic_auth.username_file"], files["basic_auth.password_file"] = b.UsernameFile, b.PasswordFile
	}
	if o := c.OAuth2; o != nil {
		files["oauth2.client_secret_file"] = o.ClientSecretFile
	}
	failed := false
	for _, k := range slices.Sorted(maps.Keys(files)) {
		if f := files[k]; f != "" {
			if _, err := os.ReadFile(f); err != nil {
				p.bad(key+"."+k, err.Error())
				failed = true
			}
		}
	}
	if failed {
		return
	}
	if _, err := roundTripper(c, key); err != nil {
		p.bad(key, err.Error())
	}
}

// roundTripper builds the transport of one outbound target. name labels it
// (prometheus/common's connection tracing).
func roundTripper(c HTTPConfig, name string) (http.RoundTripper, error) {
	cfg := commoncfg.DefaultHTTPClientConfig // when the section is absent
	if c != nil {
		cfg = *c
	}
	return commoncfg.NewRoundTripperFromConfig(cfg, name)
}

// hasAuthorization says whether c sends credentials of its own.
// sourceConfig is what every source's config has: defaults and
// validation by relative key.
type sourceConfig interface {
	Defaults()
	Validate() map[string]string
}

// finishSource applies a polling source's defaults and reports its
// problems and its http_config's at their keys.
func finishSource(c sourceConfig, hc HTTPConfig, p problems) {
	c.Defaults()
	for k, msg := range c.Validate() {
		p.bad(k, msg)
	}
	checkHTTPConfig(hc, "http_config", p)
}

func hasAuthorization(c HTTPConfig) bool {
	return c != nil && (c.Authorization != nil || c.BasicAuth != nil || c.OAuth2 != nil || c.BearerToken != "" || c.BearerTokenFile != "")
}
