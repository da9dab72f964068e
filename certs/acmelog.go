package certs

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
)

// maxLoggedBody bounds how much of a CA response problemLogger buffers.
const maxLoggedBody = 1 << 20

// problemLogger is the ACME client's transport. autocert retries failed
// challenges and then reports only "no viable challenge type found", so
// this logs what the CA said: problem documents, and challenge errors in
// authorization objects (e.g. "connection refused" on port 80).
type problemLogger struct {
	next http.RoundTripper
	log  *slog.Logger
}

// acmeAuthz is the part of an RFC 8555 authorization object worth logging.
type acmeAuthz struct {
	Status     string `json:"status"`
	Identifier struct {
		Value string `json:"value"`
	} `json:"identifier"`
	Challenges []struct {
		Type  string       `json:"type"`
		Error *acmeProblem `json:"error"`
	} `json:"challenges"`
}

type acmeProblem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

func (p *problemLogger) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := p.next.RoundTrip(req)
	if err != nil {
		return res, err
	}
	ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if ct != "application/problem+json" && ct != "application/json" {
		return res, nil
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxLoggedBody))
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return res, nil // the client will see the short body and fail
	}
	if ct == "application/problem+json" {
		var prob acmeProblem
		if json.Unmarshal(body, &prob) == nil {
			p.log.Warn("acme: CA returned a problem", "url", req.URL.String(),
				"code", res.StatusCode, "problem", prob.Type, "detail", prob.Detail)
		}
		return res, nil
	}
	if bytes.Contains(body, []byte(`"invalid"`)) {
		var z acmeAuthz
		if json.Unmarshal(body, &z) == nil && z.Status == "invalid" {
			for _, c := range z.Challenges {
				if c.Error != nil {
					p.log.Warn("acme: challenge failed", "domain", z.Identifier.Value,
						"challenge", c.Type, "problem", c.Error.Type, "detail", c.Error.Detail)
				}
			}
		}
	}
	return res, nil
}
