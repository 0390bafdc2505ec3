// Package uitest drives a real headless Chromium (Debian's chromium
// package, installed by `make tools`) from tests: open a page, read its
// elements with their drawn boxes, follow its links, take a full-page
// screenshot. It reads the page through the DevTools DOM domain, never
// with page script, so it works the same on a page with JavaScript
// disabled.
package uitest

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// EnvChromium names the browser binary; the Makefile sets it.
const EnvChromium = "WHATCHANGED_CHROMIUM"

// actionTimeout bounds one page action. Chromium starts in about a second;
// a loaded machine gets room, and a hung browser still fails the test.
const actionTimeout = 60 * time.Second

// Chromium is the browser binary from WHATCHANGED_CHROMIUM; a test without
// it fails, as the page is only tested in a real browser.
func Chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv(EnvChromium)
	if path == "" {
		t.Fatalf("%s is not set; run `make test`, which installs Debian's chromium package and sets it", EnvChromium)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s=%s: %v; run `make tools` to install Debian's chromium package", EnvChromium, path, err)
	}
	return path
}

// Browser is one headless Chromium, closed when the test ends.
type Browser struct {
	ctx context.Context
}

// Start starts Chromium headless, without its sandbox when running as
// root (it refuses to start otherwise).
func Start(t testing.TB) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		// /dev/shm is small in containers; Chromium falls back to /tmp.
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	startIn(t, ctx, "starting chromium")
	return &Browser{ctx: ctx}
}

// startIn runs the first action of a chromedp context, which starts the
// browser or opens the tab. It must not carry a timeout (the browser or
// tab would end with it), so the wait is bounded here.
func startIn(t testing.TB, ctx context.Context, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(actionTimeout):
		t.Fatalf("%s: no answer within %s", what, actionTimeout)
	}
}

// Tab is one browser tab, closed when the test ends.
type Tab struct {
	ctx context.Context
	t   testing.TB
}

// TabOption changes a new tab.
type TabOption func(t testing.TB, tab *Tab)

// WithoutJavaScript opens the tab with script execution disabled, as for a
// reader who turned JavaScript off.
func WithoutJavaScript() TabOption {
	return func(t testing.TB, tab *Tab) {
		t.Helper()
		if _, err := chromedp.Call(tab.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("disabling JavaScript: %v", err)
		}
	}
}

// WithHeaders sends these headers with every request of the tab (an
// Authorization header for a server with inbound auth).
func WithHeaders(h map[string]string) TabOption {
	return func(t testing.TB, tab *Tab) {
		t.Helper()
		headers := network.Headers{}
		for k, v := range h {
			headers[k] = v
		}
		if _, err := chromedp.Call(tab.ctx, network.Enable, network.EnableParams{}); err != nil {
			t.Fatalf("enabling the network domain: %v", err)
		}
		if _, err := chromedp.Call(tab.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: headers}); err != nil {
			t.Fatalf("setting headers: %v", err)
		}
	}
}

// Tab opens a new tab.
func (b *Browser) Tab(t testing.TB, opts ...TabOption) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	tab := &Tab{ctx: ctx, t: t}
	startIn(t, ctx, "opening a tab")
	for _, o := range opts {
		o(t, tab)
	}
	return tab
}

// Open loads url and returns the HTTP status of the document (after
// redirects).
func (tab *Tab) Open(u string) int {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(u))
	if err != nil {
		tab.t.Fatalf("opening %s: %v", u, err)
	}
	return int(resp.Status)
}

// Location is the address of the page shown.
func (tab *Tab) Location() string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, actionTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		tab.t.Fatalf("reading the location: %v", err)
	}
	return loc
}

// Box is where an element is drawn, in CSS pixels of the page.
type Box struct {
	X, Y, Width, Height float64
}

// Inside reports whether b lies within o (edges included).
func (b Box) Inside(o Box) bool {
	const eps = 0.5 // rounding of the quads
	return b.X >= o.X-eps && b.Y >= o.Y-eps && b.X+b.Width <= o.X+o.Width+eps && b.Y+b.Height <= o.Y+o.Height+eps
}

func (b Box) String() string {
	return fmt.Sprintf("(%.1f,%.1f %.1f×%.1f)", b.X, b.Y, b.Width, b.Height)
}

// Element is an element found on the page: its tag, attributes, text and
// drawn box.
type Element struct {
	Tag   string
	Attrs map[string]string
	Box   Box
	// Drawn is false when the browser laid out no box for it (hidden,
	// display: none).
	Drawn bool
}

// Elements returns every element matching the CSS selector, in document
// order; none is an empty slice, not an error.
func (tab *Tab) Elements(selector string) []Element {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, actionTimeout)
	defer cancel()
	els, err := chromedp.Run(ctx, chromedp.QueryAfter(chromedp.CSSAll(selector),
		func(ctx context.Context, t *chromedp.Target, nodes []*chromedp.Node) ([]Element, error) {
			out := make([]Element, 0, len(nodes))
			for _, n := range nodes {
				e := Element{Tag: n.LocalName, Attrs: map[string]string{}}
				for i := 0; i+1 < len(n.Attributes); i += 2 {
					e.Attrs[n.Attributes[i]] = n.Attributes[i+1]
				}
				res, err := cdp.Call(ctx, t, dom.GetBoxModel, dom.GetBoxModelParams{NodeID: n.NodeID})
				if err == nil && res.Model != nil {
					e.Box, e.Drawn = quadBox(res.Model.Border), true
				}
				out = append(out, e)
			}
			return out, nil
		}, chromedp.AtLeast(0)))
	if err != nil {
		tab.t.Fatalf("querying %q: %v", selector, err)
	}
	return els
}

// quadBox is the bounding box of a quad (x1,y1 … x4,y4).
func quadBox(q dom.Quad) Box {
	if len(q) < 8 {
		return Box{}
	}
	minX, maxX, minY, maxY := q[0], q[0], q[1], q[1]
	for i := 0; i+1 < len(q); i += 2 {
		minX, maxX = min(minX, q[i]), max(maxX, q[i])
		minY, maxY = min(minY, q[i+1]), max(maxY, q[i+1])
	}
	return Box{X: minX, Y: minY, Width: maxX - minX, Height: maxY - minY}
}

// Text is the visible text of the first element matching the CSS
// selector ("" when none).
func (tab *Tab) Text(selector string) string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, actionTimeout)
	defer cancel()
	if len(tab.Elements(selector)) == 0 {
		return ""
	}
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(selector)))
	if err != nil {
		tab.t.Fatalf("reading the text of %q: %v", selector, err)
	}
	return s
}

// Resolve makes an href of the page absolute.
func (tab *Tab) Resolve(href string) string {
	tab.t.Helper()
	base, err := url.Parse(tab.Location())
	if err != nil {
		tab.t.Fatalf("page location: %v", err)
	}
	ref, err := url.Parse(href)
	if err != nil {
		tab.t.Fatalf("href %q: %v", href, err)
	}
	return base.ResolveReference(ref).String()
}

// Screenshot saves a PNG of the whole page (not only the window) to path.
func (tab *Tab) Screenshot(path string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tab.t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tab.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tab.t.Fatal(err)
	}
}

// OutputPath is where a test keeps a file for a person to look at: the
// test's artifact directory under `go test -artifacts` (see go help
// testflag), else a fixed name in the temporary directory, which
// survives the test (the artifact directory without -artifacts does not).
func OutputPath(t testing.TB, name string) string {
	t.Helper()
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return filepath.Join(t.ArtifactDir(), name)
	}
	return filepath.Join(os.TempDir(), "whatchanged-"+name)
}

// Style is the computed value of a CSS property of the first element
// matching the selector ("" when the browser reports none).
func (tab *Tab) Style(selector, property string) string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, actionTimeout)
	defer cancel()
	props, err := chromedp.Run(ctx, chromedp.ComputedStyle(chromedp.CSS(selector)))
	if err != nil {
		tab.t.Fatalf("computed style of %q: %v", selector, err)
	}
	for _, p := range props {
		if p.Name == property {
			return p.Value
		}
	}
	return ""
}

// Submit types into a form's fields (name → text, appended to what they
// hold) and clicks the button, as a person does; it returns the HTTP
// status of the page the form leads to. It uses input events only, so it
// works with JavaScript disabled.
func (tab *Tab) Submit(fields map[string]string, button string) int {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, actionTimeout)
	defer cancel()
	var steps []chromedp.Action[chromedp.Void]
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		steps = append(steps, chromedp.SendKeys(chromedp.CSS(`[name="`+name+`"]`), fields[name]))
	}
	if err := chromedp.Do(ctx, steps...); err != nil {
		tab.t.Fatalf("filling the form: %v", err)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
	if err != nil {
		tab.t.Fatalf("submitting the form with %s: %v", button, err)
	}
	return int(resp.Status)
}
