package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNotFound is returned by Store.Get for a missing object.
var ErrNotFound = errors.New("blob: object not found")

// Store is where archive objects go: Azure Blob Storage (NewAzureStore) or
// a local directory (NewDirStore). Names are slash-separated paths.
type Store interface {
	// Put writes the object name with data, replacing it if it exists;
	// readers never see a partial object.
	Put(ctx context.Context, name string, data []byte) error
	// List returns the names that start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Get returns an object's bytes, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
}

// DirStore keeps objects as files under a directory, with the same layout
// as the blob container.
type DirStore struct {
	root string
}

// NewDirStore returns a store in dir, creating it if missing.
func NewDirStore(dir string) (*DirStore, error) {
	if dir == "" {
		return nil, errors.New("blob: archive directory is empty")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blob: archive directory: %w", err)
	}
	return &DirStore{root: dir}, nil
}

func (d *DirStore) path(name string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(name))
	if name == "" || filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("blob: bad object name %q", name)
	}
	return filepath.Join(d.root, clean), nil
}

// Put writes data to a temporary file beside the object, syncs it, renames
// it into place and syncs the directory, so a reader sees the whole object
// or none, and a written object survives a power loss.
func (d *DirStore) Put(_ context.Context, name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("blob: put %s: %w", name, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return fmt.Errorf("blob: put %s: %w", name, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("blob: put %s: %w", name, err)
	}
	// The offsets are committed once Put returns: make the new directory
	// entry durable too.
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("blob: put %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// List walks the directory of prefix (up to its last slash) and returns the
// object names that start with prefix; temporary files are left out.
func (d *DirStore) List(_ context.Context, prefix string) ([]string, error) {
	dir := prefix[:strings.LastIndex(prefix, "/")+1]
	start := d.root
	if dir != "" {
		p, err := d.path(dir)
		if err != nil {
			return nil, err
		}
		start = p
	}
	var names []string
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		if n := filepath.ToSlash(rel); strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob: list %s: %w", prefix, err)
	}
	sort.Strings(names)
	return names, nil
}

// Get reads one object.
func (d *DirStore) Get(_ context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob: get %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: get %s: %w", name, err)
	}
	return b, nil
}
