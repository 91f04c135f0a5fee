package blob

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sailstream/sailstream/internal/testenv"
)

// TestIntegrationAzureStore checks the Azure store against Azurite, once
// with the connection string and once with account name, key and URL
// (shared key): the container is created on the first Put, List filters
// by prefix, Get returns the bytes or ErrNotFound.
func TestIntegrationAzureStore(t *testing.T) {
	conn := testenv.AzuriteConnectionString(t)
	t.Parallel()
	var endpoint string
	for _, kv := range strings.Split(conn, ";") {
		if v, ok := strings.CutPrefix(kv, "BlobEndpoint="); ok {
			endpoint = v
		}
	}
	if endpoint == "" {
		t.Fatalf("no BlobEndpoint in %q", conn)
	}
	for name, cfg := range map[string]AzureConfig{
		"connection-string": {ConnectionString: conn},
		"shared-key":        {AccountName: testenv.AzuriteAccount, AccountKey: testenv.AzuriteKey, AccountURL: endpoint + "/"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg.Container = testenv.Unique("store-")
			s, err := NewAzureStore(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if names, err := s.List(ctx, "raw/"); err != nil || len(names) != 0 {
				t.Fatalf("List before the container exists = %q, %v", names, err)
			}
			objs := []string{"raw/2026/01/02/03/a-0-0-1.ndjson.gz", "raw/2026/01/02/03/a-1-0-1.ndjson.gz", "raw/2026/01/02/04/a-0-2-3.ndjson.gz"}
			for _, n := range objs {
				if err := s.Put(ctx, n, []byte("data of "+n)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Put(ctx, objs[0], []byte("data of "+objs[0])); err != nil {
				t.Fatalf("rewriting an object: %v", err)
			}
			got, err := s.List(ctx, "raw/2026/01/02/03/")
			if err != nil || !reflect.DeepEqual(got, objs[:2]) {
				t.Fatalf("List = %q, %v; want %q", got, err, objs[:2])
			}
			got, _ = s.List(ctx, "raw/2026/01/02/03/a-1-")
			if !reflect.DeepEqual(got, objs[1:2]) {
				t.Fatalf("List(a-1-) = %q", got)
			}
			b, err := s.Get(ctx, objs[2])
			if err != nil || string(b) != "data of "+objs[2] {
				t.Fatalf("Get = %q, %v", b, err)
			}
			if _, err := s.Get(ctx, "raw/none"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get of a missing blob = %v, want ErrNotFound", err)
			}
		})
	}
}
