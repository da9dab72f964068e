package rpctest

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
)

// serveHTTP routes a request as a Substrate node does on its RPC port:
// WebSocket upgrades, JSON-RPC over POST, and the health endpoints.
func (n *Node) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !n.track() {
		panic(http.ErrAbortHandler)
	}
	defer n.handlers.Done()
	if !n.waitStall(r.Context()) {
		panic(http.ErrAbortHandler) // drop the connection, as a stopped node would
	}
	switch {
	case isUpgrade(r):
		n.serveWS(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/health":
		writeJSON(w, http.StatusOK, n.Health())
	case r.Method == http.MethodGet && r.URL.Path == "/health/readiness":
		h := n.Health()
		if h.IsSyncing || (h.ShouldHavePeers && h.Peers == 0) {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost:
		n.servePost(w, r)
	default:
		w.Header().Set("Allow", "POST")
		http.Error(w, "Used HTTP Method is not allowed. POST is required", http.StatusMethodNotAllowed)
	}
}

func (n *Node) servePost(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		http.Error(w, "Supplied content type is not allowed. Content-Type: application/json is required", http.StatusUnsupportedMediaType)
		return
	}
	body := io.Reader(r.Body)
	if n.opts.MaxMessageSize > 0 {
		body = http.MaxBytesReader(w, r.Body, n.opts.MaxMessageSize)
	}
	msg, err := io.ReadAll(body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "Request is too big", http.StatusRequestEntityTooLarge)
		}
		return
	}
	var subs []string
	resp := n.handleMessage(nil, msg, &subs)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write(resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		if strings.EqualFold(strings.TrimSpace(v), "websocket") {
			return true
		}
	}
	return false
}
