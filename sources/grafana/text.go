package grafana

import (
	"net/url"
	"strings"

	"golang.org/x/net/html"

	"github.com/whatchanged/whatchanged/sources"
)

// maxMessage bounds a message: annotation text can be a whole changelog.
const maxMessage = 500

// readText turns an annotation's text, which Grafana renders as HTML (CI
// tools write links: `Deployed <a href="…/runs/42">v1.2.3</a>`), into a
// plain line and the first http(s) link in it.
func readText(text string) (message, link string) {
	if !strings.ContainsAny(text, "<&") { // most are plain: no tokenizer (a 4 KiB buffer each)
		return sources.Truncate(strings.Join(strings.Fields(text), " "), maxMessage), ""
	}
	z := html.NewTokenizer(strings.NewReader(text))
	var b strings.Builder
	for {
		switch z.Next() {
		case html.ErrorToken: // io.EOF: the tokenizer reads a string
			return sources.Truncate(strings.Join(strings.Fields(b.String()), " "), maxMessage), link
		case html.TextToken:
			b.Write(z.Text())
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			if tag := string(name); tag == "br" || tag == "p" || tag == "div" || tag == "li" {
				b.WriteByte(' ') // a line break in HTML is a space in one line
			}
			for hasAttr && link == "" && string(name) == "a" {
				var key, val []byte
				key, val, hasAttr = z.TagAttr()
				if string(key) == "href" {
					if u, err := url.Parse(strings.TrimSpace(string(val))); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
						link = u.String()
					}
				}
			}
		}
	}
}
