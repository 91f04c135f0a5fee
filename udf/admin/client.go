package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/sailstream/sailstream/udf/registry"
)

// Client calls the admin API; `sailstream udf` uses it.
type Client struct {
	// URL is the API's base URL, e.g. http://127.0.0.1:9470.
	URL string
	// Token is sent as the bearer token when not empty.
	Token string
	// HTTP is the client to use; nil: http.DefaultClient.
	HTTP *http.Client
}

// StatusError is an error response of the API.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// Deploy uploads wasm with its manifest to POST /udfs/deploy (or
// /udfs/{m.Name}/deploy when the manifest names it).
func (c *Client) Deploy(ctx context.Context, wasm []byte, m registry.Manifest) (registry.Result, error) {
	return c.upload(ctx, "deploy", wasm, m)
}

// Shadow uploads wasm to POST /udfs/shadow (or /udfs/{m.Name}/shadow).
func (c *Client) Shadow(ctx context.Context, wasm []byte, m registry.Manifest) (registry.Result, error) {
	return c.upload(ctx, "shadow", wasm, m)
}

func (c *Client) upload(ctx context.Context, action string, wasm []byte, m registry.Manifest) (registry.Result, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fname := "module.wasm"
	if m.FileName != "" {
		fname = filepath.Base(m.FileName)
	}
	fw, err := mw.CreateFormFile("module", fname)
	if err != nil {
		return registry.Result{}, err
	}
	if _, err := fw.Write(wasm); err != nil {
		return registry.Result{}, err
	}
	js, err := json.Marshal(m)
	if err != nil {
		return registry.Result{}, err
	}
	if err := mw.WriteField("manifest", string(js)); err != nil {
		return registry.Result{}, err
	}
	if err := mw.Close(); err != nil {
		return registry.Result{}, err
	}
	p := "/udfs/" + action
	if m.Name != "" {
		p = "/udfs/" + url.PathEscape(m.Name) + "/" + action
	}
	var res registry.Result
	err = c.do(ctx, http.MethodPost, p, mw.FormDataContentType(), &body, &res)
	return res, err
}

// Promote calls POST /udfs/{name}/promote.
func (c *Client) Promote(ctx context.Context, name string) (registry.Result, error) {
	var res registry.Result
	err := c.do(ctx, http.MethodPost, "/udfs/"+url.PathEscape(name)+"/promote", "", nil, &res)
	return res, err
}

// Rollback calls POST /udfs/{name}/rollback.
func (c *Client) Rollback(ctx context.Context, name string) (registry.Result, error) {
	var res registry.Result
	err := c.do(ctx, http.MethodPost, "/udfs/"+url.PathEscape(name)+"/rollback", "", nil, &res)
	return res, err
}

// SetRoutes calls PUT /routes.
func (c *Client) SetRoutes(ctx context.Context, r registry.Routes) (registry.Result, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return registry.Result{}, err
	}
	var res registry.Result
	err = c.do(ctx, http.MethodPut, "/routes", "application/json", bytes.NewReader(js), &res)
	return res, err
}

// View calls GET /udfs.
func (c *Client) View(ctx context.Context) (View, error) {
	var v View
	err := c.do(ctx, http.MethodGet, "/udfs", "", nil, &v)
	return v, err
}

func (c *Client) do(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	if c.URL == "" {
		return errors.New("admin API: no URL (--admin-url or SAILSTREAM_ADMIN_URL)")
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w (is the core running with its admin API at %s?)", err, c.URL)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: reading the response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("admin API: decoding the response: %w", err)
	}
	return nil
}
