package server

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A rotated token file takes effect without a restart; while the file is
// missing (a Secret being swapped), the last token stays in force.
func TestInboundTokenFileIsReadAgainWhenItChanges(t *testing.T) {
	defer func(d time.Duration) { recheck = d }(recheck)
	recheck = 0
	file := filepath.Join(t.TempDir(), "token")
	write := func(v string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("token-one")
	e := newEnv(t, Config{Auth: Auth{BearerTokenFile: file}}, http.StatusOK)
	status := func(tok string) int {
		t.Helper()
		code, _ := e.do(t, http.MethodPost, "/webhook", notification(time.Now()), "Authorization", "Bearer "+tok)
		return code
	}
	if status("token-one") != http.StatusOK || status("token-two") != http.StatusUnauthorized {
		t.Fatal("first token not in force")
	}
	write("token-two-is-longer")
	if status("token-two-is-longer") != http.StatusOK || status("token-one") != http.StatusUnauthorized {
		t.Error("rotated token not taken")
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if status("token-two-is-longer") != http.StatusOK {
		t.Error("a missing file locked senders out")
	}
}
