package scenarios_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// The fakes speak the real protocols (paths, status codes, JSON shapes,
// headers) from the scenario's data. A request for a path the real server
// does not serve, or one whatchanged should never make, is answered 404
// and recorded: the scenario then fails with "unexpected request …".

type recorder struct {
	mu         sync.Mutex
	requests   []string
	unexpected []string
}

func (r *recorder) saw(req *http.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, req.Method+" "+req.URL.RequestURI())
	r.mu.Unlock()
}

func (r *recorder) unexpectedRequest(w http.ResponseWriter, req *http.Request, why string) {
	r.mu.Lock()
	r.unexpected = append(r.unexpected, fmt.Sprintf("%s %s%s (%s)", req.Method, req.Host, req.URL.RequestURI(), why))
	r.mu.Unlock()
	http.Error(w, "404 page not found", http.StatusNotFound)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

func (r *recorder) problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.unexpected))
	for i, u := range r.unexpected {
		out[i] = "unexpected request " + u
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
