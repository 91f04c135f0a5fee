package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// AzureConfig says how to reach a blob container. Exactly one way to
// authenticate is used, in this order: ConnectionString; AccountName with
// AccountKey (shared key); otherwise Azure AD through
// azidentity.NewDefaultAzureCredential (environment, workload or managed
// identity, Azure CLI) against AccountURL.
type AzureConfig struct {
	ConnectionString string
	// AccountURL is https://ACCOUNT.blob.core.windows.net/ (default from
	// AccountName).
	AccountURL  string
	AccountName string
	AccountKey  string
	// Container is created if it does not exist (default "telemetry-raw").
	Container string
}

// DefaultContainer is the container used when AzureConfig.Container is
// empty.
const DefaultContainer = "telemetry-raw"

// AzureStore keeps objects as block blobs in one container.
type AzureStore struct {
	client    *azblob.Client
	container string

	mu      sync.Mutex
	ensured bool // the container is known to exist
}

// NewAzureStore returns a store for cfg's container. It does no I/O: the
// container is created on the first Put.
func NewAzureStore(cfg AzureConfig) (*AzureStore, error) {
	if cfg.Container == "" {
		cfg.Container = DefaultContainer
	}
	// The archiver retries failed uploads itself with its own backoff (and
	// counts them); the SDK gets only a couple of quick retries.
	opts := &azblob.ClientOptions{}
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second, TryTimeout: time.Minute}
	var (
		client *azblob.Client
		err    error
	)
	accountURL := cfg.AccountURL
	if accountURL == "" && cfg.AccountName != "" {
		accountURL = "https://" + cfg.AccountName + ".blob.core.windows.net/"
	}
	switch {
	case cfg.ConnectionString != "":
		client, err = azblob.NewClientFromConnectionString(cfg.ConnectionString, opts)
	case cfg.AccountName != "" && cfg.AccountKey != "":
		var cred *azblob.SharedKeyCredential
		if cred, err = azblob.NewSharedKeyCredential(cfg.AccountName, cfg.AccountKey); err == nil {
			client, err = azblob.NewClientWithSharedKeyCredential(accountURL, cred, opts)
		}
	case accountURL != "":
		var cred *azidentity.DefaultAzureCredential
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err == nil {
			client, err = azblob.NewClient(accountURL, cred, opts)
		}
	default:
		return nil, errors.New("blob: azure: set a connection string, an account name and key, or an account URL (Azure AD)")
	}
	if err != nil {
		return nil, fmt.Errorf("blob: azure client: %w", err)
	}
	return &AzureStore{client: client, container: cfg.Container}, nil
}

func (s *AzureStore) ensureContainer(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ensured {
		return nil
	}
	_, err := s.client.CreateContainer(ctx, s.container, nil)
	// An identity allowed to write blobs but not to create containers
	// (the container came from terraform/) goes on: Put says if it lacks
	// more than that.
	if err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists,
		bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationFailure) {
		return fmt.Errorf("blob: creating container %s: %w", s.container, err)
	}
	s.ensured = true
	return nil
}

// Put uploads data as one block blob (a single request, so the blob appears
// whole or not at all).
func (s *AzureStore) Put(ctx context.Context, name string, data []byte) error {
	if err := s.ensureContainer(ctx); err != nil {
		return err
	}
	_, err := s.client.UploadBuffer(ctx, s.container, name, data, nil)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		s.mu.Lock()
		s.ensured = false
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("blob: put %s/%s: %w", s.container, name, err)
	}
	return nil
}

// List returns the blob names under prefix (the service lists them
// sorted).
func (s *AzureStore) List(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	pager := s.client.NewListBlobsFlatPager(s.container, &azblob.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("blob: list %s/%s: %w", s.container, prefix, err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name != nil && strings.HasPrefix(*b.Name, prefix) {
				names = append(names, *b.Name)
			}
		}
	}
	return names, nil
}

// Get downloads one blob.
func (s *AzureStore) Get(ctx context.Context, name string) ([]byte, error) {
	resp, err := s.client.DownloadStream(ctx, s.container, name, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return nil, fmt.Errorf("blob: get %s/%s: %w", s.container, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: get %s/%s: %w", s.container, name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("blob: get %s/%s: %w", s.container, name, err)
	}
	return b, nil
}
