package uitest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// WithoutJavaScript really turns script off (a page test that relies on it
// would pass for nothing otherwise), and the default tab runs it.
func TestWithoutJavaScript(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!DOCTYPE html><title>static</title><p id="p">text</p><script>document.title = "script ran"</script>`)
	}))
	defer srv.Close()
	b := Start(t)
	for _, tc := range []struct {
		name  string
		opts  []TabOption
		title string
	}{
		{"JavaScript on", nil, "script ran"},
		{"JavaScript off", []TabOption{WithoutJavaScript()}, "static"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := b.Tab(t, tc.opts...)
			if status := tab.Open(srv.URL); status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			if got := tab.Text("title"); got != tc.title {
				t.Errorf("title %q, want %q", got, tc.title)
			}
			if p := tab.Elements("#p"); len(p) != 1 || !p[0].Drawn || p[0].Box.Width <= 0 {
				t.Errorf("paragraph %+v, want it drawn", p)
			}
		})
	}
}
