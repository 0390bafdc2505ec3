package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
)

// build turns the TLS settings into a tls.Config; nil when nothing is set.
func (t TLSConfig) build() (*tls.Config, error) {
	if t == (TLSConfig{}) {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("ca_file: no PEM certificates in it")
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// transportFor shares base unless the target has its own TLS settings.
func transportFor(base *http.Transport, t TLSConfig) (*http.Transport, error) {
	tc, err := t.build()
	if err != nil || tc == nil {
		return base, err
	}
	tr := base.Clone()
	tr.TLSClientConfig = tc
	return tr, nil
}

// authHeaders turns configured credentials into request headers.
func authHeaders(bearer Secret, basic BasicAuthConfig, extra map[string]Secret) map[string]string {
	h := map[string]string{}
	for k, v := range extra {
		h[k] = v.reveal()
	}
	if !bearer.empty() {
		h["Authorization"] = "Bearer " + bearer.reveal()
	}
	if basic.Username != "" {
		h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(basic.Username+":"+basic.Password.reveal()))
	}
	return h
}
