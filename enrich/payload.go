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
	"unicode/utf8"
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

	// src is the alert as received, a slice of the body (not a copy): it is
	// written back as is but for its annotations, which lie at src[ann[0]:
	// ann[1]] (ann[0] < 0: it had none). Four words per alert instead of a
	// map of its members: a group of 50,000 alerts stays small.
	src json.RawMessage
	ann [2]int
}

// field is one member of a JSON object as received.
type field struct {
	name  string
	value json.RawMessage
}

func lookup(fields []field, name string) (json.RawMessage, bool) {
	for _, f := range fields {
		if f.name == name {
			return f.value, true
		}
	}
	return nil, false
}

// Payload is Alertmanager's webhook body (version 4). Unknown top-level
// fields (routeLabels, notification_reason, …) are kept in raw.
type Payload struct {
	Version  string
	GroupKey string
	Receiver string
	Status   string
	Alerts   []*Alert

	fields []field
}

// DecodeError says what is wrong with a body and where.
type DecodeError struct {
	Where   string // "body", "alerts[3].labels", …
	Problem string
}

func (e *DecodeError) Error() string { return e.Where + ": " + e.Problem }

// DecodeWebhook parses Alertmanager's default webhook body. Invalid UTF-8
// anywhere in it is replaced by U+FFFD first (see validUTF8). The payload
// keeps slices of body (the fields it passes through): body must not change
// afterwards.
func DecodeWebhook(body []byte) (*Payload, error) {
	body = validUTF8(body)
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	fields, err := splitObject(body, "body")
	if err != nil {
		return nil, err
	}
	p := &Payload{fields: fields}
	alertsRaw, ok := lookup(fields, "alerts")
	if !ok {
		return nil, &DecodeError{"body", `no "alerts" field: this is not Alertmanager's default webhook body ` +
			`(a receiver with a custom "payload" template is not supported; remove it)`}
	}
	for field, dst := range map[string]*string{"version": &p.Version, "groupKey": &p.GroupKey, "receiver": &p.Receiver, "status": &p.Status} {
		if v, ok := lookup(fields, field); ok {
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

// splitObject lists the members of the JSON object data in order, each
// value a slice of data: a large body is not copied member by member.
// data must be valid JSON.
func splitObject(data []byte, where string) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, &DecodeError{where, "expected a JSON object"}
	}
	out := make([]field, 0, 8)
	for dec.More() {
		tok, err := dec.Token()
		name, ok := tok.(string)
		if err != nil || !ok {
			return nil, &DecodeError{where, "expected a JSON object"}
		}
		v, err := nextValue(dec, data)
		if err != nil {
			return nil, &DecodeError{where + "." + name, "invalid JSON"}
		}
		out = append(out, field{intern(name), v})
	}
	// Exact size: a large group keeps tens of thousands of these.
	return slices.Clone(out), nil
}

// intern returns the constant for the member names every alert has, so
// they are not kept once per alert.
func intern(name string) string {
	switch name {
	case "status":
		return "status"
	case "labels":
		return "labels"
	case "annotations":
		return "annotations"
	case "startsAt":
		return "startsAt"
	case "endsAt":
		return "endsAt"
	case "generatorURL":
		return "generatorURL"
	case "fingerprint":
		return "fingerprint"
	}
	return name
}

// splitArray lists the elements of the JSON array data, each a slice of
// data; ok is false when data is not an array.
func splitArray(data []byte) (items []json.RawMessage, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, false
	}
	items = []json.RawMessage{}
	for dec.More() {
		v, err := nextValue(dec, data)
		if err != nil {
			return nil, false
		}
		items = append(items, v)
	}
	return items, true
}

// nextValue is the decoder's next value as a slice of data (what lies
// between the offsets before and after it, less the separator).
func nextValue(dec *json.Decoder, data []byte) (json.RawMessage, error) {
	start := dec.InputOffset()
	var skip json.RawMessage
	if err := dec.Decode(&skip); err != nil {
		return nil, err
	}
	return bytes.TrimLeft(data[start:dec.InputOffset()], " \t\r\n:,"), nil
}

// LabelSet reads a label map field of the body (groupLabels, commonLabels);
// nil when absent or not a map of strings.
func (p *Payload) LabelSet(field string) map[string]string {
	var m map[string]string
	if v, ok := lookup(p.fields, field); ok {
		_ = json.Unmarshal(v, &m)
	}
	return m
}

// validUTF8 replaces invalid UTF-8 with U+FFFD, in labels, annotations
// and every field we pass through alike: encoding/json would replace it in
// what we decode and re-encode (annotations) but not in what we keep raw
// (labels, unknown fields), and the receiver would get invalid JSON. A
// valid body is returned as is, without a copy.
func validUTF8(body []byte) []byte {
	if utf8.Valid(body) {
		return body
	}
	return bytes.ToValidUTF8(body, []byte("\uFFFD"))
}

// DecodeAlerts parses a postable-alerts array (POST /api/v2/alerts body).
// Invalid UTF-8 is replaced as DecodeWebhook does.
func DecodeAlerts(body []byte) ([]*Alert, error) {
	body = validUTF8(body)
	if err := checkJSON(body); err != nil {
		return nil, err
	}
	return decodeAlerts(body, "body")
}

func decodeAlerts(data json.RawMessage, where string) ([]*Alert, error) {
	items, ok := splitArray(data)
	if !ok {
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
	if !bytes.HasPrefix(data, []byte("{")) {
		return nil, &DecodeError{where, "expected a JSON object"}
	}
	fields, err := splitObject(data, where)
	if err != nil {
		return nil, err
	}
	a := &Alert{src: data, ann: [2]int{-1, -1}}
	lr, ok := lookup(fields, "labels")
	if !ok {
		return nil, &DecodeError{where + ".labels", "missing; every alert needs labels"}
	}
	if err := json.Unmarshal(lr, &a.Labels); err != nil || a.Labels == nil {
		return nil, &DecodeError{where + ".labels", "expected an object of string values"}
	}
	if ar, ok := lookup(fields, "annotations"); ok {
		// ar is a slice of data: its offset is how much shorter its capacity is.
		start := cap(data) - cap(ar)
		a.ann = [2]int{start, start + len(ar)}
	}
	if ar, ok := lookup(fields, "annotations"); ok && string(ar) != "null" {
		if err := json.Unmarshal(ar, &a.Annotations); err != nil {
			return nil, &DecodeError{where + ".annotations", "expected an object of string values"}
		}
	}
	for field, dst := range map[string]*string{"status": &a.Status, "generatorURL": &a.GeneratorURL, "fingerprint": &a.Fingerprint} {
		if v, ok := lookup(fields, field); ok {
			if err := json.Unmarshal(v, dst); err != nil {
				return nil, &DecodeError{where + "." + field, "expected a string"}
			}
		}
	}
	for field, dst := range map[string]*time.Time{"startsAt": &a.StartsAt, "endsAt": &a.EndsAt} {
		if v, ok := lookup(fields, field); ok && string(v) != "null" {
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
	if a.src == nil { // built in code, not decoded
		fields := []field{}
		if a.Labels != nil {
			l, _ := json.Marshal(a.Labels)
			fields = append(fields, field{"labels", l})
		}
		ann, err := json.Marshal(a.Annotations)
		if err != nil {
			return err
		}
		writeObject(buf, fields, field{"annotations", ann})
		return nil
	}
	if a.ann[0] < 0 && len(a.Annotations) == 0 {
		buf.Write(a.src)
		return nil
	}
	ann, err := json.Marshal(a.Annotations)
	if err != nil {
		return err
	}
	if a.ann[0] >= 0 {
		buf.Write(a.src[:a.ann[0]])
		buf.Write(ann)
		buf.Write(a.src[a.ann[1]:])
		return nil
	}
	// No annotations member: add one before the closing brace.
	body := bytes.TrimRight(a.src, " \t\r\n")
	body = body[:len(body)-1]
	buf.Write(body)
	if len(bytes.TrimSpace(body)) > 1 {
		buf.WriteByte(',')
	}
	buf.WriteString(`"annotations":`)
	buf.Write(ann)
	buf.WriteByte('}')
	return nil
}

// encodedSize estimates an alert's encoded length: as received plus ours.
func (a *Alert) encodedSize() int {
	n := len(a.src) + 16
	for k, v := range a.Annotations {
		n += len(k) + len(v) + 6
	}
	return n
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
	var out bytes.Buffer
	out.Grow(len(alerts) + len(common) + 1024)
	writeObject(&out, p.fields, field{"alerts", alerts}, field{"commonAnnotations", common})
	return out.Bytes(), nil
}

// EncodeAlerts writes a postable-alerts array back, annotations updated.
func EncodeAlerts(alerts []*Alert) ([]byte, error) {
	var buf bytes.Buffer
	n := 2
	for _, a := range alerts {
		n += a.encodedSize() + 1
	}
	buf.Grow(n) // one allocation, not a doubling series of them
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

// writeObject writes fields as a JSON object in the order received, with
// each of set replacing the member of its name (appended when absent; a
// nil value is no replacement). Values must be valid JSON: slices of a
// body that was checked, or json.Marshal's.
func writeObject(buf *bytes.Buffer, fields []field, set ...field) {
	buf.WriteByte('{')
	n := 0
	member := func(f field) {
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		name, _ := json.Marshal(f.name)
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(f.value)
	}
	done := make([]bool, len(set))
	for _, f := range fields {
		for i, r := range set {
			if r.name == f.name && r.value != nil {
				f, done[i] = r, true
			}
		}
		member(f)
	}
	for i, r := range set {
		if !done[i] && r.value != nil {
			member(r)
		}
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
