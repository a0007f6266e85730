package gatewayproxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// apiVersion matches the version segment clients put after /api.
var apiVersion = regexp.MustCompile(`^/api(/v[0-9]+)?`)

// serveREST passes a client's REST request to Discord with the real token in place of the
// placeholder, and answers GET /gateway and /gateway/bot itself: the gateway a client
// should dial is the proxy.
func (p *Proxy) serveREST(w http.ResponseWriter, r *http.Request) {
	// The path goes upstream as the client escaped it; one that climbs (.., .) could
	// dodge the routes the proxy answers itself, so it is refused.
	rest := apiVersion.ReplaceAllString(r.URL.EscapedPath(), "")
	if slices.ContainsFunc(strings.Split(rest, "/"), func(seg string) bool { return seg == "." || seg == ".." }) {
		p.refuse(w, http.StatusBadRequest, "400: Bad Request (a path with . or .. segments)")
		return
	}
	auth := r.Header.Get("Authorization")
	switch {
	case auth == "":
	case strings.HasPrefix(auth, "Bot "):
		if !tokenMatches(auth, p.opts.ClientToken) {
			p.refuse(w, http.StatusUnauthorized, "401: Unauthorized")
			return
		}
		r.Header.Set("Authorization", "Bot "+p.opts.RealToken)
	default:
		// A user's OAuth2 bearer token: the client's own business.
	}
	if r.Method == http.MethodGet && (rest == "/gateway" || rest == "/gateway/bot") {
		p.serveGatewayInfo(w, r, rest)
		return
	}
	p.passREST(w, r, rest, nil)
}

// passREST sends the request upstream; edit, when set, may change a 200 answer's body.
func (p *Proxy) passREST(w http.ResponseWriter, r *http.Request, rest string, edit func([]byte) []byte) {
	base, err := url.Parse(p.opts.APIURL)
	if err != nil {
		http.Error(w, "the proxy's API URL is invalid", http.StatusBadGateway)
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = base.Scheme, base.Host
			pr.Out.URL.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + rest
			pr.Out.URL.Path, _ = url.PathUnescape(pr.Out.URL.RawPath)
			pr.Out.Host = base.Host
			pr.Out.Header.Del("X-Forwarded-For")
		},
		Transport: p.opts.Transport,
		ModifyResponse: func(resp *http.Response) error {
			p.metrics.rest.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
			if edit == nil || resp.StatusCode != http.StatusOK {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				return err
			}
			body = edit(body)
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			resp.Header.Del("Content-Encoding")
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			p.metrics.rest.WithLabelValues("502").Inc()
			p.log.Info("a client's REST request did not reach Discord", "path", rest, "why", err.Error())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			_ = json.NewEncoder(w).Encode(map[string]any{"message": "the gateway proxy could not reach Discord's API", "code": 0})
		},
	}
	if edit != nil {
		r.Header.Del("Accept-Encoding") // the body is edited: take it plain
	}
	rp.ServeHTTP(w, r)
}

// serveGatewayInfo answers GET /gateway and /gateway/bot: the proxy's own URL, and for
// /gateway/bot the pod's number of shards (a client that shards itself opens one
// connection per pod shard) and Discord's session start figures.
func (p *Proxy) serveGatewayInfo(w http.ResponseWriter, r *http.Request, rest string) {
	own := "ws://" + r.Host
	if rest == "/gateway" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"url": own})
		return
	}
	if r.Header.Get("Authorization") == "" {
		p.refuse(w, http.StatusUnauthorized, "401: Unauthorized")
		return
	}
	p.passREST(w, r, rest, func(body []byte) []byte {
		var info map[string]json.RawMessage
		if err := json.Unmarshal(body, &info); err != nil {
			return body
		}
		info["url"], _ = json.Marshal(own)
		info["shards"], _ = json.Marshal(len(p.opts.ShardIDs))
		out, err := json.Marshal(info)
		if err != nil {
			return body
		}
		return out
	})
}

// refuse answers a REST request locally, in Discord's error shape.
func (p *Proxy) refuse(w http.ResponseWriter, code int, message string) {
	p.metrics.rest.WithLabelValues(strconv.Itoa(code)).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"message": message, "code": 0})
}
