package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	commoncfg "github.com/prometheus/common/config"
)

var secretTypes = []reflect.Type{reflect.TypeOf(Secret("")), reflect.TypeOf(commoncfg.Secret(""))}

// secretsReport says, for `config check --show`, which secrets are set and
// where from, never their values: "auth.bearer_token: set in the config",
// "sources.github.http_config.authorization.credentials_file: /path".
func (c Config) secretsReport() []string {
	var out []string
	walkSecrets(reflect.ValueOf(c), "", &out)
	slices.Sort(out)
	return out
}

func walkSecrets(v reflect.Value, path string, out *[]string) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		files := map[string]bool{}
		for i := range t.NumField() {
			if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); strings.HasSuffix(name, "_file") && v.Field(i).String() != "" {
				files[strings.TrimSuffix(name, "_file")] = true
			}
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fv := v.Field(i)
			switch {
			case strings.Contains(opts, "inline"):
				walkSecrets(fv, path, out)
			case name == "" || name == "-":
			case slices.Contains(secretTypes, f.Type):
				if fv.String() != "" && !files[name] {
					*out = append(*out, join(path, name)+": set in the config")
				}
			case strings.HasSuffix(name, "_file") && f.Type.Kind() == reflect.String:
				if fv.String() != "" {
					*out = append(*out, fmt.Sprintf("%s: %s", join(path, name), fv.String()))
				}
			default:
				walkSecrets(fv, join(path, name), out)
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walkSecrets(v.MapIndex(k), join(path, fmt.Sprint(k.Interface())), out)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkSecrets(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}
