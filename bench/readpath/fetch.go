package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// fetched is one reference answer.
type fetched struct {
	ContentType string
	Body        []byte
}

// fetch GETs url once, as the load generator will, and requires a 200.
func fetch(ctx context.Context, url string) (fetched, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fetched{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fetched{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return fetched{}, fmt.Errorf("GET %s: %s: %.300s", url, resp.Status, body)
	}
	return fetched{ContentType: resp.Header.Get("Content-Type"), Body: body}, nil
}

// firstProductID reads the id of the first product of a product list page.
func firstProductID(list []byte) (string, error) {
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(list, &page); err != nil {
		return "", fmt.Errorf("decode product list: %w", err)
	}
	if len(page.Data) == 0 || page.Data[0].ID == "" {
		return "", fmt.Errorf("product list has no product: %.300s", bytes.TrimSpace(list))
	}
	return page.Data[0].ID, nil
}
