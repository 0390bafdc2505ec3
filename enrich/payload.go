// Package enrich is the pipeline: decode an Alertmanager payload, resolve
// each alert's subject, ask the sources for changes within a budget, rank
// them and render annotations. It knows nothing of HTTP.
//
// The annotations, after the prefix (Options.AnnotationPrefix, default
// "whatchanged_"):
//
//	summary         always: a line per change, the suspect first, or why there is none
//	suspect         the change that most likely caused the alert, one line
//	links           the suspect's links, "name: url" lines (every link it has)
//	compare_url     the suspect's diff from the previous to the deployed revision
//	argocd_url      the Argo CD application that synced the suspect
//	release_url     the GitHub release the suspect shipped
//	deployment_url  the suspect's GitHub deployment status page (its log, else the environment)
//	ci_url          the url CI pushed with the suspect (POST /api/v1/changes)
//	changes         the ranked changes as compact JSON, for programs; off with
//	                Options.Annotations.ChangesJSON = false
//	error           the sources that failed or timed out
//
// A *_url annotation is written only when the suspect has that kind of
// link, so a template can test for it and build a button from it.
package enrich

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Alert is one alert of a webhook payload or of a postable-alerts array.
// Fields whatchanged does not read are kept verbatim in raw and written back
// unchanged, so newer Alertmanager fields pass through.
type Alert struct {
	Status       string
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
	Fingerprint  string

	raw map[string]json.RawMessage
}

// Payload is Alertmanager's webhook body (version 4). Unknown top-level
// fields (routeLabels, notification_reason, …) are kept in raw.
type Payload struct {
	Version  string
	GroupKey string
	Receiver string
	Status   string
	Alerts   []*Alert

	raw map[string]json.RawMessage
}

// DecodeError says what is wrong with a body and where.
type DecodeError struct {
	Where   string // "body", "alerts[3].labels", …
	Problem string
}

func (e *DecodeError) Error() string { return e.Where + ": " + e.Problem }

// DecodeWebhook parses Alertmanager's default webhook body.
func DecodeWebhook(body []byte) (*Payload, error) {
	raw, err := decodeObject(body, "body")
	if err != nil {
		return nil, err
	}
	p := &Payload{raw: raw}
	alertsRaw, ok := raw["alerts"]
	if !ok {
		return nil, &DecodeError{"body", `no "alerts" field: this is not Alertmanager's default webhook body ` +
			`(a receiver with a custom "payload" template is not supported; remove it)`}
	}
	for field, dst := range map[string]*string{"version": &p.Version, "groupKey": &p.GroupKey, "receiver": &p.Receiver, "status": &p.Status} {
		if v, ok := raw[field]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, &DecodeError{field, "expected a string"}
			}
		}
	}
	if p.Version != "" && p.Version != "4" {
		return nil, &DecodeError{"version", fmt.Sprintf("webhook version %q is not supported (want \"4\")", p.Version)}
	}
	p.Alerts, err = decodeAlerts(alertsRaw, "alerts")
	if err != nil {
		return nil, err
	}
	return p, nil
}

// LabelSet reads a label map field of the body (groupLabels, commonLabels);
// nil when absent or not a map of strings.
func (p *Payload) LabelSet(field string) map[string]string {
	var m map[string]string
	if v, ok := p.raw[field]; ok {
		_ = json.Unmarshal(v, &m)
	}
	return m
}

// DecodeAlerts parses a postable-alerts array (POST /api/v2/alerts body).
func DecodeAlerts(body []byte) ([]*Alert, error) {
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	return decodeAlerts(body, "body")
}

func decodeAlerts(data json.RawMessage, where string) ([]*Alert, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil || items == nil && !bytes.Equal(bytes.TrimSpace(data), []byte("[]")) {
		return nil, &DecodeError{where, "expected a JSON array of alerts"}
	}
	alerts := make([]*Alert, 0, len(items))
	for i, item := range items {
		a, err := decodeAlert(item, fmt.Sprintf("%s[%d]", where, i))
		if err != nil {
			return nil, err
		}
		alerts = append(alerts, a)
	}
	return alerts, nil
}

func decodeAlert(data json.RawMessage, where string) (*Alert, error) {
	raw, err := decodeObject(data, where)
	if err != nil {
		return nil, err
	}
	a := &Alert{raw: raw}
	lr, ok := raw["labels"]
	if !ok {
		return nil, &DecodeError{where + ".labels", "missing; every alert needs labels"}
	}
	if err := json.Unmarshal(lr, &a.Labels); err != nil || a.Labels == nil {
		return nil, &DecodeError{where + ".labels", "expected an object of string values"}
	}
	if ar, ok := raw["annotations"]; ok && string(ar) != "null" {
		if err := json.Unmarshal(ar, &a.Annotations); err != nil {
			return nil, &DecodeError{where + ".annotations", "expected an object of string values"}
		}
	}
	for field, dst := range map[string]*string{"status": &a.Status, "generatorURL": &a.GeneratorURL, "fingerprint": &a.Fingerprint} {
		if v, ok := raw[field]; ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, &DecodeError{where + "." + field, "expected a string"}
			}
		}
	}
	for field, dst := range map[string]*time.Time{"startsAt": &a.StartsAt, "endsAt": &a.EndsAt} {
		if v, ok := raw[field]; ok && string(v) != "null" {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, &DecodeError{where + "." + field, "expected an RFC 3339 time string"}
			}
			if s == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, &DecodeError{where + "." + field, fmt.Sprintf("%q is not an RFC 3339 time", s)}
			}
			*dst = t
		}
	}
	return a, nil
}

func decodeObject(data []byte, where string) (map[string]json.RawMessage, error) {
	if err := checkJSON(data); err != nil {
		if de, ok := err.(*DecodeError); ok && where != "body" {
			de.Where = where
		}
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return nil, &DecodeError{where, "expected a JSON object"}
	}
	return raw, nil
}

// checkJSON turns a syntax error into a message with the byte offset.
func checkJSON(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &DecodeError{"body", "empty; expected JSON"}
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return &DecodeError{"body", fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())}
		}
		return &DecodeError{"body", "invalid JSON"}
	}
	return nil
}

// Firing reports whether the alert is still firing at now: its status says
// so, or (for postable alerts, which have no status) endsAt is unset or later.
func (a *Alert) Firing(now time.Time) bool {
	if a.Status != "" {
		return a.Status == "firing"
	}
	return a.EndsAt.IsZero() || a.EndsAt.Year() <= 1 || a.EndsAt.After(now)
}

// MarshalJSON writes the alert back with its annotations updated and every
// other field exactly as received.
func (a *Alert) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	if err := a.encode(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (a *Alert) encode(buf *bytes.Buffer) error {
	fields := a.raw
	if len(a.Annotations) > 0 || a.raw["annotations"] != nil {
		ann, err := json.Marshal(a.Annotations)
		if err != nil {
			return err
		}
		fields = maps.Clone(a.raw)
		if fields == nil {
			fields = map[string]json.RawMessage{}
		}
		fields["annotations"] = ann
	}
	writeObject(buf, fields)
	return nil
}

// Encode writes the payload back with the alerts' annotations and
// commonAnnotations recomputed; all other fields are kept as received. It
// writes the kept raw values as they are instead of letting encoding/json
// re-validate them at every level (a third of the cost of a large group).
func (p *Payload) Encode() ([]byte, error) {
	alerts, err := EncodeAlerts(p.Alerts)
	if err != nil {
		return nil, err
	}
	common, err := json.Marshal(commonAnnotations(p.Alerts))
	if err != nil {
		return nil, err
	}
	fields := maps.Clone(p.raw)
	fields["alerts"] = alerts
	fields["commonAnnotations"] = common
	var out bytes.Buffer
	out.Grow(len(alerts) + 1024)
	writeObject(&out, fields)
	return out.Bytes(), nil
}

// EncodeAlerts writes a postable-alerts array back, annotations updated.
func EncodeAlerts(alerts []*Alert) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, a := range alerts {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := a.encode(&buf); err != nil {
			return nil, err
		}
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// MarshalJSON is Encode, for callers that embed a payload in other JSON.
func (p *Payload) MarshalJSON() ([]byte, error) { return p.Encode() }

// writeObject writes fields as a JSON object with sorted keys. Values must
// be valid JSON: they come from the decoder or from json.Marshal.
func writeObject(buf *bytes.Buffer, fields map[string]json.RawMessage) {
	buf.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(fields)) {
		if i > 0 {
			buf.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(fields[k])
	}
	buf.WriteByte('}')
}

// commonAnnotations is what Alertmanager computes: the annotations every
// alert of the group has with the same value.
func commonAnnotations(alerts []*Alert) map[string]string {
	common := map[string]string{}
	if len(alerts) == 0 {
		return common
	}
	maps.Copy(common, alerts[0].Annotations)
	for _, a := range alerts[1:] {
		for k, v := range common {
			if a.Annotations[k] != v {
				delete(common, k)
			}
		}
	}
	return common
}
