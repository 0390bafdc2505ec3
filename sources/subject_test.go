package sources

import (
	"testing"
	"unicode/utf8"
)

func TestNormalizeRepo(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/acme/api.git":       "github.com/acme/api",
		"https://GitHub.com/acme/api/":          "github.com/acme/api",
		"git@github.com:acme/api.git":           "github.com/acme/api",
		"ssh://git@github.com/acme/api":         "github.com/acme/api",
		"ssh://git@gitlab.example.com:2222/g/p": "gitlab.example.com/g/p",
		"github.com/acme/api":                   "github.com/acme/api",
		"https://user:tok@github.com/acme/api":  "github.com/acme/api",
		"":                                      "",
	} {
		if got := NormalizeRepo(in); got != want {
			t.Errorf("NormalizeRepo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRelate(t *testing.T) {
	alert := Subject{Namespace: "shop", Kind: "Deployment", Name: "api", App: "shop-api", Repo: "github.com/acme/api"}
	tests := []struct {
		name   string
		change Subject
		want   Relation
	}{
		{"same workload", Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}, RelationWorkload},
		{"same name, kind unknown", Subject{Namespace: "shop", Name: "api"}, RelationWorkload},
		{"same name, other kind", Subject{Namespace: "shop", Kind: "StatefulSet", Name: "api"}, RelationNamespace},
		{"same name, other namespace", Subject{Namespace: "billing", Name: "api"}, RelationNone},
		{"same app", Subject{App: "shop-api"}, RelationApp},
		{"same repo, other spelling", Subject{Repo: "git@github.com:acme/api.git"}, RelationRepo},
		{"same namespace", Subject{Namespace: "shop", Name: "web"}, RelationNamespace},
		{"nothing shared", Subject{Namespace: "billing", App: "ledger"}, RelationNone},
		{"same app by an alias", Subject{Namespace: "shop", Name: "worker", App: "shop", Apps: []string{"shop-api"}}, RelationApp},
		{"same app in another namespace", Subject{Namespace: "staging", Name: "api", App: "shop-api"}, RelationNone},
		{"same repo in another namespace", Subject{Namespace: "staging", Name: "api", Repo: "github.com/acme/api"}, RelationNone},
		{"an app of that name deployed to another namespace", Subject{Namespace: "checkout", App: "shop-api"}, RelationNone},
		{"its repo in its namespace", Subject{Namespace: "shop", Repo: "github.com/acme/api"}, RelationApp},
		{"same name, no namespace, another team's app", Subject{Name: "api", App: "search-api", Repo: "github.com/acme/search"}, RelationNone},
		{"empty", Subject{}, RelationNone},
	}
	for _, tt := range tests {
		if got := Relate(alert, tt.change); got != tt.want {
			t.Errorf("%s: Relate = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 5, "abcde…"},
		{"héllo wörld", 2, "h…"}, // "é" is 2 bytes: never cut in half
		{"日本語のコミット", 4, "日…"},
	} {
		got := Truncate(tt.in, tt.n)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
